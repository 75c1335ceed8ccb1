"""The items of an annotation round as files: a name, and the voxels of the case's own NIfTI file they cover.

A volume item covers its whole case file; a slice item (``"<case_id>:<slice_index>"``, taken along the data module's
``axis`` of the reader's RAS+ frame, :mod:`alseg.datasets.items`) is one slice of that file: the file axis that the
reader turned into ``axis``, at the index the reader's flip (if any) maps the slice to. Its single-slice NIfTI keeps
the file's voxel order (size 1 along that axis) and the file's affine moved to the slice, so it overlays the case in
any viewer. Patch items may add a box (``box`` in the manifest, None here).
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
from nibabel import orientations

from alseg.datasets.items import parse_item_id
from alseg.datasets.nifti_output import SourceGeometry
from alseg.datasets.volume_data_module import VolumeDataModule


@dataclass(frozen=True)
class AnnotationItem:
    """One item to annotate and where its voxels are in the case's file.

    Attributes:
        item_id: The item id.
        case_id: Its case.
        slice_index: The slice along the data module's ``axis`` (reader frame), or None for a volume.
        axis: The data module's slicing axis (reader frame), or None for a volume.
        geometry: The case's first image file.
    """

    item_id: str
    case_id: str
    slice_index: int | None
    axis: int | None
    geometry: SourceGeometry

    @classmethod
    def of(cls, data_module: VolumeDataModule, item_id: str) -> AnnotationItem:
        """The item ``item_id`` of ``data_module``, with the header of its case's first image file."""
        case_id, slice_index = parse_item_id(item_id)
        first = next(iter(data_module.case(case_id).images.values())).path
        axis = None if slice_index is None else data_module.axis
        return cls(item_id, case_id, slice_index, axis, SourceGeometry.of_file(first, case_id))

    @property
    def name(self) -> str:
        """The file name of the item's images, predictions and masks (``<case>`` or ``<case>_slice012``)."""
        stem = self.case_id if self.slice_index is None else f"{self.case_id}_slice{self.slice_index:03d}"
        return f"{stem}.nii.gz"

    @property
    def _file_slice(self) -> tuple[int, int] | None:
        """``(file axis, file index)`` of a slice item, None for a volume."""
        if self.slice_index is None:
            return None
        orientation = self.geometry.orientation
        file_axis = int(np.flatnonzero(orientation[:, 0] == self.axis)[0])
        flipped = orientation[file_axis, 1] < 0
        return file_axis, self.geometry.shape[file_axis] - 1 - self.slice_index if flipped else self.slice_index

    @property
    def shape(self) -> tuple[int, int, int]:
        """The spatial shape of the item's files (file voxel order; 1 along the slicing axis of a slice)."""
        shape = list(self.geometry.shape)
        if self._file_slice is not None:
            shape[self._file_slice[0]] = 1
        return tuple(shape)

    @property
    def affine(self) -> np.ndarray:
        """The voxel → world affine of the item's files: the file's, moved to the slice for a slice item."""
        affine = np.array(self.geometry.image.affine, dtype=np.float64)
        if self._file_slice is not None:
            file_axis, index = self._file_slice
            affine[:3, 3] += affine[:3, file_axis] * index
        return affine

    def slab(self, array: np.ndarray) -> np.ndarray:
        """The item's part of a reader-frame case array ``[..., X, Y, Z]``, keeping a size-1 slicing axis."""
        if self.slice_index is None:
            return array
        return np.take(array, [self.slice_index], axis=array.ndim - 3 + self.axis)

    def to_file(self, array: np.ndarray, description: str) -> nib.Nifti1Image:
        """A NIfTI image of a reader-frame item array ``[X, Y, Z]`` or ``[C, X, Y, Z]`` (C > 1 on the 4th axis)."""
        data = array if array.ndim == 3 else np.moveaxis(array, 0, -1)
        if data.ndim == 4 and data.shape[-1] == 1:
            data = data[..., 0]
        return self.geometry.like_source(self.geometry.to_file_order(data), description, self.affine)

    def to_reader(self, data: np.ndarray) -> np.ndarray:
        """A file-order item array ``[*shape]`` in the reader's frame (the inverse of :meth:`to_file`)."""
        return np.ascontiguousarray(orientations.apply_orientation(data, self.geometry.orientation))
