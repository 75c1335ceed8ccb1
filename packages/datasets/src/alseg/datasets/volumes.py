"""Reading and checking one case from NIfTI; intensities as stored (see :mod:`alseg.datasets.normalization`).

Array convention (used by every module of this package): nibabel voxel order ``(x, y, z)``,
reoriented (by axis permutation and flips only, never resampling) to the closest RAS+
orientation, so axis 0 runs left→right, axis 1 posterior→anterior and axis 2 (the last voxel
axis) inferior→superior: slices along axis 2 are axial. Images are channel-first
``float32 [C, X, Y, Z]``. SimpleITK is not used: its arrays come out ``(z, y, x)`` in LPS, and
nibabel already gives lazy proxies in the order we want.

Every file of a case must have the same spatial shape and (within ``affine_tolerance`` mm) the
same affine; non-finite image voxels are an error, not silently zeroed.
"""

import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from alseg.core.errors import DataError
from alseg.datasets.cases import Case, ImageSource
from alseg.datasets.labels import LabelScheme

_READ_ERRORS = (ImageFileError, OSError, EOFError, ValueError, zlib.error)


@dataclass(frozen=True)
class CaseVolume:
    """One decoded case.

    Attributes:
        case_id: The case id.
        image: ``float32 [C, X, Y, Z]``, channels in the case's modality order.
        label: Target from the label scheme (``uint8 [R, X, Y, Z]`` or ``uint8 [X, Y, Z]``), or
            ``None`` for an unlabelled case.
        affine: ``float64 [4, 4]`` voxel → RAS+ millimetre map of the (reoriented) arrays.
        spacing: Voxel size in mm along X, Y, Z.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray | None
    affine: np.ndarray
    spacing: tuple[float, float, float]


def _decode(path: Path, case_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Full voxel array (as stored) and affine of one file."""
    try:
        image = nib.load(path)
        return np.asanyarray(image.dataobj), image.affine
    except _READ_ERRORS as error:
        raise DataError(f"Case {case_id}: cannot read NIfTI file {path}: {error}") from None


def _channel(data: np.ndarray, source: ImageSource, case_id: str) -> np.ndarray:
    """The 3D array of one modality: the file itself, or one volume of a 4D file."""
    if source.channel is None:
        if data.ndim == 3:
            return data
        expected = "a 3D image"
    else:
        if data.ndim == 4 and source.channel < data.shape[3]:
            return data[..., source.channel]
        expected = f"a 4D image with at least {source.channel + 1} volumes on the 4th axis"
    raise DataError(f"Case {case_id}: file {source.path.name} should hold {expected}. Got shape {data.shape}.")


def _check_finite(case_id: str, name: str, data: np.ndarray) -> None:
    if not np.issubdtype(data.dtype, np.floating):
        return  # integers are always finite
    if data.dtype.itemsize <= 4 and np.isfinite(data.sum(dtype=np.float64)):
        return  # one pass, no mask: a float64 sum of float32 voxels cannot overflow, so it is finite iff they all are
    finite = np.isfinite(data)
    if not finite.all():
        raise DataError(f"Case {case_id}: image file {name} holds {int((~finite).sum())} NaN/Inf voxels.")


def _check_consistent(case_id: str, arrays: dict[str, tuple[np.ndarray, np.ndarray]], tolerance: float) -> None:
    (ref_name, (ref_data, ref_affine)), *others = arrays.items()
    for name, (data, affine) in others:
        if data.shape != ref_data.shape:
            raise DataError(f"Case {case_id}: file {name} has shape {data.shape}, but {ref_name} has {ref_data.shape}.")
        deviation = float(np.abs(affine - ref_affine).max())
        if deviation > tolerance:
            raise DataError(
                f"Case {case_id}: the affine of file {name} differs from that of {ref_name} by "
                f"up to {deviation:.4g} (tolerance {tolerance:g})."
            )


def _stacked(channels: list[np.ndarray]) -> np.ndarray:
    """``float32 [C, X, Y, Z]`` in Fortran order (the cache's), filled from reoriented views in one copy each."""
    image = np.empty((len(channels), *channels[0].shape), np.float32, order="F")
    for index, channel in enumerate(channels):
        image[index] = channel
    return image


def read_case(case: Case, label_scheme: LabelScheme | None, affine_tolerance: float = 1e-3) -> CaseVolume:
    """Decode, check and reorient every file of a case.

    Args:
        case: The case to read.
        label_scheme: Converts and checks the label map; ``None`` skips the label.
        affine_tolerance: Largest allowed absolute difference between affine entries of the
            files of the case.

    Returns:
        The decoded case (see :class:`CaseVolume`).

    Raises:
        DataError: A file is unreadable or truncated, shapes or affines disagree, an image holds
            NaN/Inf voxels, or the label holds undeclared values. The message names case and file.
    """
    decoded: dict[Path, tuple[np.ndarray, np.ndarray]] = {}

    def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
        if path not in decoded:  # a 4D file holding several modalities is decoded once
            decoded[path] = _decode(path, case.case_id)
        return decoded[path]

    images = {}
    for source in case.images.values():
        data, affine = load(source.path)
        suffix = "" if source.channel is None else f"[{source.channel}]"
        images[source.path.name + suffix] = (_channel(data, source, case.case_id), affine)
    with_label = label_scheme is not None and case.label is not None
    labels = {case.label.name: load(case.label)} if with_label else {}
    _check_consistent(case.case_id, images | labels, affine_tolerance)
    for name, (data, _) in images.items():
        _check_finite(case.case_id, name, data)

    affine = next(iter(images.values()))[1]
    orientation = nib.orientations.io_orientation(affine)
    image = _stacked([nib.orientations.apply_orientation(data, orientation) for data, _ in images.values()])
    label = None
    if with_label:
        raw = nib.orientations.apply_orientation(labels[case.label.name][0], orientation)
        label = np.asfortranarray(label_scheme.convert(raw, case.case_id, case.label.name))
    # inv_ornt_aff takes the shape *before* reorientation (flips are about the original axes).
    original_shape = next(iter(images.values()))[0].shape
    new_affine = affine @ nib.orientations.inv_ornt_aff(orientation, original_shape)
    spacing = tuple(float(size) for size in nib.affines.voxel_sizes(new_affine))
    return CaseVolume(case.case_id, image, label, new_affine, spacing)
