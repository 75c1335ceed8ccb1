"""Random 3D training patches of a labelled item, cropped first: only the patch's box is read.

Only training items are cropped: they are labelled, so foreground-centred sampling, which reads the
label, is legitimate there. Validation, test and pool items stay whole volumes.

The sampler chooses a :class:`Window` from the volume's shape and its foreground voxel indices (precomputed
by the cache, :meth:`~alseg.datasets.cache.VolumeCache.foreground_voxels`); :func:`crop` then reads only that
window of a memory-mapped array and zero-pads where it reaches past the volume. The patches are those of
MONAI's ``SpatialPadd`` (symmetric zero padding to the patch size) followed by ``RandCropByPosNegLabeld`` (a
foreground centre, moved inside the volume by ``correct_crop_centers``) or ``RandSpatialCropd`` (a uniform
corner) on the whole volume, without reading the whole volume.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.data.utils import get_random_patch
from monai.transforms import SpatialCrop, SpatialPad
from monai.transforms.utils import correct_crop_centers

from alseg.core.errors import ConfigError


def foreground_indices(foreground: np.ndarray) -> np.ndarray:
    """Flat C-order indices of the True voxels of a mask, ``int32`` (``int64`` for 2**31 voxels or more)."""
    dtype = np.int32 if foreground.size < 2**31 else np.int64
    return np.flatnonzero(foreground).astype(dtype, copy=False)


@dataclass(frozen=True)
class Window:
    """A box of voxels ``[start, start + size)`` per axis; it may reach outside the volume (padding there).

    Attributes:
        start: First voxel per axis, in the volume's coordinates (negative where padded before the volume).
        size: Voxels per axis.
    """

    start: tuple[int, int, int]
    size: tuple[int, int, int]

    def inside(self, shape: Sequence[int]) -> tuple[slice, slice, slice]:
        """The part of the window inside a volume of ``shape``, as slices."""
        return tuple(slice(max(s, 0), min(s + n, d)) for s, n, d in zip(self.start, self.size, shape, strict=True))

    def padding(self, shape: Sequence[int]) -> list[tuple[int, int]]:
        """Voxels of the window before and after a volume of ``shape``, per axis."""
        return [(max(-s, 0), max(s + n - d, 0)) for s, n, d in zip(self.start, self.size, shape, strict=True)]


def crop(array: np.ndarray, window: Window, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """A copy of ``window`` of ``array`` ``[..., X, Y, Z]``, zero outside the volume; only the window is read.

    Args:
        array: The volume (e.g. memory-mapped).
        window: The box to read.
        transform: Applied to the part inside the volume before it is padded (e.g. the normaliser, so that
            padding stays 0 as ``SpatialPadd`` after normalisation would give).

    Returns:
        ``[..., *window.size]``, the dtype of ``array`` (or of ``transform``'s result).
    """
    part = np.ascontiguousarray(array[(..., *window.inside(array.shape[-3:]))])
    return pad_to_window(part if transform is None else transform(part), window, array.shape[-3:])


def pad_to_window(part: np.ndarray, window: Window, shape: Sequence[int]) -> np.ndarray:
    """The part ``[..., *spatial]`` of ``window`` inside a volume of ``shape``, zero-padded to the whole window."""
    padding = window.padding(shape)
    if not any(before or after for before, after in padding):
        return part
    return np.pad(part, [(0, 0)] * (part.ndim - 3) + padding)


class PatchSampler:
    """Chooses the random patch window of a training item.

    Volumes smaller than the patch are zero-padded to it (symmetrically, as ``SpatialPadd``; 0 is background in
    labels and in MRI normalised over non-zero voxels, as nnU-Net pads). With probability
    ``foreground_probability`` the patch is centred on a foreground voxel (as nnU-Net oversamples foreground),
    otherwise it lies anywhere; a label without foreground always gets a patch anywhere. Given a ``region`` (a
    labelled box of a partially labelled volume), the centre is drawn from the region's voxels instead (its known
    foreground ones with ``foreground_probability``), so every patch holds labelled voxels.

    Args:
        patch_size: Patch size ``(X, Y, Z)``.
        foreground_probability: Probability of a foreground-centred patch, in [0, 1].
    """

    def __init__(self, patch_size: Sequence[int], foreground_probability: float) -> None:
        if len(patch_size) != 3 or any(not isinstance(n, int) or n < 1 for n in patch_size):
            raise ConfigError(f"The 'patch_size' option must be 3 integers >= 1. Got {patch_size!r}.")
        if not 0.0 <= foreground_probability <= 1.0:
            raise ConfigError(
                f"The 'foreground_patch_probability' option must be in [0, 1]. Got {foreground_probability!r}."
            )
        self.patch_size = tuple(patch_size)
        self.foreground_probability = foreground_probability
        self._pad = SpatialPad(self.patch_size)

    def window(self, shape: Sequence[int], foreground: np.ndarray, region: Window | None = None) -> Window:
        """The window of one random patch of a volume of ``shape``.

        Randomness comes from torch's global generator, which Lightning seeds and which every DataLoader worker
        seeds differently (a numpy state of its own would be copied unchanged into every worker).

        Args:
            shape: The volume's spatial shape ``(X, Y, Z)``.
            foreground: Flat (C-order) indices of the foreground voxels, of the volume, or of ``region`` if given
                (e.g. a memory map: one element is read).
            region: Optional box inside the volume: the centre is drawn from its voxels (its ``foreground`` ones
                with ``foreground_probability``).
        """
        wants_foreground = bool(torch.rand(()) < self.foreground_probability)
        random = np.random.RandomState(int(torch.randint(0, 2**31 - 1, ())))
        before = np.array([width[0] for width in self._pad.compute_pad_width(shape)[1:]])
        padded = [int(n) for n in np.maximum(shape, self.patch_size)]
        if wants_foreground and len(foreground):
            within = shape if region is None else region.size
            centre = np.unravel_index(int(foreground[random.randint(len(foreground))]), within)
        elif region is not None:
            centre = np.unravel_index(random.randint(int(np.prod(region.size))), region.size)
        else:
            corner = [s.start for s in get_random_patch(padded, self.patch_size, random)]
            return Window(tuple(int(c) for c in np.subtract(corner, before)), self.patch_size)
        # MONAI's generate_pos_neg_label_crop_centers draws from indices of the padded volume and needs background
        # indices too; drawing the one voxel here keeps the indices those of the unpadded volume (or region).
        offset = before if region is None else before + np.array(region.start)
        moved = correct_crop_centers([int(c) for c in np.add(centre, offset)], self.patch_size, padded)
        box = SpatialCrop.compute_slices(roi_center=moved, roi_size=self.patch_size)
        return Window(tuple(int(s.start) - int(b) for s, b in zip(box, before, strict=True)), self.patch_size)
