"""Writing arrays of the reader's frame back into the geometry of a case's own NIfTI file.

:func:`~alseg.datasets.volumes.read_case` reorients every case to the closest RAS+ orientation (axis permutations
and flips only, by ``nibabel.orientations.io_orientation`` of the first image file). A prediction made in that frame
is turned back into the voxel order of that file and saved with its affine and a copy of its header (qform and sform
with their codes, units, voxel sizes), so that it overlays the input image in any viewer. Files are written under a
temporary name and renamed, so an output is either complete or absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations

from alseg.core.errors import DataError
from alseg.datasets.atomic_files import replacing
from alseg.datasets.volumes import _READ_ERRORS

PROBABILITY_DTYPE = np.uint16
"""On-disk type of probability maps: NIfTI has no float16, so probabilities are 16-bit integers with the header's
``scl_slope`` (:data:`PROBABILITY_SLOPE`): readers that apply the scaling (nibabel's ``get_fdata``, ITK, viewers) get
floats in [0, 1], to within 1.6e-5."""
PROBABILITY_SLOPE = float(np.float32(1 / np.iinfo(PROBABILITY_DTYPE).max))  # x 65535 <= 1 in float32 and float64


@dataclass(frozen=True)
class SourceGeometry:
    """The geometry of the file a case was read from (its first image file).

    Attributes:
        image: The loaded file (header and affine; its voxels are not read).
        shape: Its spatial shape, in the file's voxel order.
    """

    image: nib.Nifti1Image
    shape: tuple[int, int, int]

    @classmethod
    def of_file(cls, path: Path, case_id: str) -> SourceGeometry:
        """Reads the header of ``path``.

        Raises:
            DataError: The file cannot be read as NIfTI (naming case and file).
        """
        try:
            image = nib.load(path)
        except _READ_ERRORS as error:
            raise DataError(f"Case {case_id}: cannot read NIfTI file {path}: {error}") from None
        return cls(image, tuple(int(n) for n in image.shape[:3]))

    @property
    def orientation(self) -> np.ndarray:
        """The reorientation :func:`~alseg.datasets.volumes.read_case` applied (an ``ornt`` array)."""
        return orientations.io_orientation(self.image.affine)

    @property
    def reoriented_shape(self) -> tuple[int, int, int]:
        """The spatial shape of the case's arrays in the reader's frame."""
        permutation = self.orientation[:, 0].astype(int)
        shape = [0, 0, 0]
        for axis, size in zip(permutation, self.shape, strict=True):
            shape[axis] = size
        return tuple(shape)

    def to_file_order(self, array: np.ndarray) -> np.ndarray:
        """``array [X, Y, Z, ...]`` in the reader's frame, in the file's voxel order (trailing axes kept)."""
        back = orientations.ornt_transform(orientations.axcodes2ornt("RAS"), self.orientation)
        return np.ascontiguousarray(orientations.apply_orientation(array, back))

    def like_source(self, data: np.ndarray, description: str, affine: np.ndarray | None = None) -> nib.Nifti1Image:
        """A NIfTI image of ``data`` (file voxel order) with the source's affine and a copy of its header.

        The header keeps the source's qform and sform (and their codes), units and voxel sizes; its intensity
        scaling, display range and intent are cleared (they describe the source's intensities). ``affine`` replaces
        the source's in both (e.g. the affine of one slice of the file, whose voxels are a part of the source's).
        """
        header = self.image.header.copy()
        header.set_data_dtype(data.dtype)
        header.set_data_shape(data.shape)
        header.set_slope_inter(1.0, 0.0)
        header.set_intent("none")
        header["cal_min"], header["cal_max"] = 0, 0
        header["descrip"] = description.encode()[:79]
        output = type(self.image)(data, self.image.affine if affine is None else affine, header)
        qform, sform = (
            (self.image.header.get_qform(), self.image.header.get_sform()) if affine is None else (affine,) * 2
        )
        output.set_qform(qform, int(self.image.header["qform_code"]))
        output.set_sform(sform, int(self.image.header["sform_code"]))
        return output


def probability_image(geometry: SourceGeometry, probabilities: np.ndarray, description: str) -> nib.Nifti1Image:
    """The probability map of a case: ``[X, Y, Z, C]`` in the file's voxel order, scaled 16-bit integers.

    Args:
        geometry: The case's source file.
        probabilities: ``float [C, X, Y, Z]`` in the reader's frame, each in [0, 1].
        description: The header's ``descrip``.
    """
    channels_last = geometry.to_file_order(np.moveaxis(np.asarray(probabilities, np.float64), 0, -1))
    steps = np.rint(np.clip(channels_last, 0.0, 1.0) / PROBABILITY_SLOPE)
    image = geometry.like_source(
        np.minimum(steps, np.iinfo(PROBABILITY_DTYPE).max).astype(PROBABILITY_DTYPE), description
    )
    image.header.set_slope_inter(PROBABILITY_SLOPE, 0.0)
    return image


def save_atomically(image: nib.Nifti1Image, path: Path) -> None:
    """Saves ``image`` to ``path`` through a temporary file in the same folder and a rename."""
    with replacing(path) as temporary:
        nib.save(image, temporary)
