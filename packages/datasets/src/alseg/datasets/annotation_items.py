"""The items of an annotation round as files: a name, and the voxels of the case's own NIfTI file they cover.

Every item is a box of its case in the reader's RAS+ frame (:mod:`alseg.datasets.volumes`): a volume item is the
whole case; a slice item (``"<case_id>:<slice_index>"``, taken along the data module's ``axis``,
:mod:`alseg.datasets.items`) is one voxel thick along that axis; a patch item (``"<case_id>:<x0>-<y0>-<z0>:<sx>-<sy>-
<sz>"``, :mod:`alseg.datasets.patch_items`) is its box. In the case's file the same voxels form a box too (the
reader only permutes and flips axes), so an item's NIfTI keeps the file's voxel order, with the item's extent, and
the file's affine moved to the box's first voxel: it overlays the case in any viewer.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
from nibabel import orientations

from alseg.core.patch_pool import Box
from alseg.datasets.items import parse_item_id
from alseg.datasets.nifti_output import SourceGeometry
from alseg.datasets.patch_items import parse_patch_id
from alseg.datasets.volume_data_module import VolumeDataModule

PLURAL = {"volume": "volumes", "slice": "slices", "patch": "patches"}


@dataclass(frozen=True)
class AnnotationItem:
    """One item to annotate and where its voxels are in the case's file.

    Attributes:
        item_id: The item id.
        case_id: Its case.
        slice_index: The slice along the data module's ``axis`` (reader frame), or None for a volume or patch.
        axis: The data module's slicing axis (reader frame), or None for a volume or patch.
        geometry: The case's first image file.
        box: A patch item's box (reader frame), or None for a volume or slice.
    """

    item_id: str
    case_id: str
    slice_index: int | None
    axis: int | None
    geometry: SourceGeometry
    box: Box | None = None

    @classmethod
    def of(cls, data_module: VolumeDataModule, item_id: str) -> AnnotationItem:
        """The item ``item_id`` of ``data_module``, with the header of its case's first image file."""
        box = parse_patch_id(item_id)
        case_id, slice_index = (box.case_id, None) if box is not None else parse_item_id(item_id)
        first = next(iter(data_module.case(case_id).images.values())).path
        axis = None if slice_index is None else data_module.axis
        return cls(item_id, case_id, slice_index, axis, SourceGeometry.of_file(first, case_id), box)

    @property
    def kind(self) -> str:
        """``"volume"``, ``"slice"`` or ``"patch"``."""
        return "patch" if self.box is not None else "volume" if self.slice_index is None else "slice"

    @property
    def name(self) -> str:
        """The file name of the item's images, predictions and masks.

        ``<case>``, ``<case>_slice012`` or ``<case>_box<x0>-<y0>-<z0>_<sx>-<sy>-<sz>`` (reader frame, as in the id).
        """
        if self.box is not None:
            start, size = ("-".join(map(str, values)) for values in (self.box.start, self.box.size))
            stem = f"{self.case_id}_box{start}_{size}"
        else:
            stem = self.case_id if self.slice_index is None else f"{self.case_id}_slice{self.slice_index:03d}"
        return f"{stem}.nii.gz"

    @property
    def _region(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(start, size)`` of the item in the reader's frame."""
        if self.box is not None:
            return self.box.start, self.box.size
        shape = self.geometry.reoriented_shape
        if self.slice_index is None:
            return (0, 0, 0), shape
        start = tuple(self.slice_index if a == self.axis else 0 for a in range(3))
        return start, tuple(1 if a == self.axis else n for a, n in enumerate(shape))

    @property
    def file_box(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """``(start, size)`` of the item in the voxel order of the case's file."""
        start, size = self._region
        file_start, file_size = [], []
        for file_axis, (axis, direction) in enumerate(self.geometry.orientation.astype(int)):
            first = start[axis] if direction > 0 else self.geometry.shape[file_axis] - start[axis] - size[axis]
            file_start.append(int(first))
            file_size.append(int(size[axis]))
        return tuple(file_start), tuple(file_size)  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, int, int]:
        """The spatial shape of the item's files (file voxel order; 1 along the slicing axis of a slice)."""
        return self.file_box[1]

    @property
    def affine(self) -> np.ndarray:
        """The voxel → world affine of the item's files: the file's, moved to the item's first voxel."""
        affine = np.array(self.geometry.image.affine, dtype=np.float64)
        affine[:3, 3] += affine[:3, :3] @ np.array(self.file_box[0], dtype=np.float64)
        return affine

    def slab(self, array: np.ndarray) -> np.ndarray:
        """The item's part of a reader-frame case array ``[..., X, Y, Z]`` (a slice keeps its size-1 axis)."""
        start, size = self._region
        return array[(..., *(slice(a, a + n) for a, n in zip(start, size, strict=True)))]

    def to_file(self, array: np.ndarray, description: str) -> nib.Nifti1Image:
        """A NIfTI image of a reader-frame item array ``[X, Y, Z]`` or ``[C, X, Y, Z]`` (C > 1 on the 4th axis)."""
        data = array if array.ndim == 3 else np.moveaxis(array, 0, -1)
        if data.ndim == 4 and data.shape[-1] == 1:
            data = data[..., 0]
        return self.geometry.like_source(self.geometry.to_file_order(data), description, self.affine)

    def to_reader(self, data: np.ndarray) -> np.ndarray:
        """A file-order item array ``[*shape]`` in the reader's frame (the inverse of :meth:`to_file`)."""
        return np.ascontiguousarray(orientations.apply_orientation(data, self.geometry.orientation))
