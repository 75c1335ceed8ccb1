"""Random 3D training patches of a labelled item (MONAI dictionary transforms).

Only training items are cropped: they are labelled, so foreground-centred sampling, which reads the
label, is legitimate there. Validation, test and pool items stay whole volumes.
"""

from collections.abc import Sequence

import torch
from monai.transforms import RandCropByPosNegLabeld, RandSpatialCropd, SpatialPadd
from monai.utils import convert_to_tensor

from alseg.core.errors import ConfigError
from alseg.core.partial_labels import UNKNOWN

_KEYS = ("image", "label")
_PADDED = ("image", "label", "region")


class PatchSampler:
    """Crops ``image`` ``[C, X, Y, Z]`` and ``label`` ``[R, X, Y, Z]`` to a random patch.

    Volumes smaller than the patch are first zero-padded to it (``SpatialPadd``; 0 is background
    in labels and in MRI normalised over non-zero voxels, the foreground mean in normalised CT, as
    nnU-Net pads). With probability ``foreground_probability`` the patch is
    centred on a foreground voxel (``RandCropByPosNegLabeld``, as nnU-Net oversamples
    foreground), otherwise on any voxel (``RandSpatialCropd``); a label without foreground always
    gets a random patch. Given a ``region`` (a labelled box of a partially labelled volume), the
    centre is drawn from the region's voxels instead (its known foreground ones with
    ``foreground_probability``), so every patch holds labelled voxels.

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
        self.foreground_probability = foreground_probability
        self.pad = SpatialPadd(_PADDED, spatial_size=tuple(patch_size), allow_missing_keys=True)
        self.random_crop = RandSpatialCropd(_KEYS, roi_size=tuple(patch_size), random_size=False)
        self.foreground_crop = RandCropByPosNegLabeld(
            _KEYS, label_key="foreground", spatial_size=tuple(patch_size), pos=1.0, neg=0.0, num_samples=1
        )

    def __call__(
        self, image: torch.Tensor, label: torch.Tensor, region: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One random patch of ``image`` and ``label`` (same location).

        Randomness comes from torch's global generator, which Lightning seeds and which every
        DataLoader worker seeds differently (MONAI's own per-transform state would be copied
        unchanged into every worker).

        Args:
            image: ``float32 [C, X, Y, Z]``.
            label: ``[R, X, Y, Z]``; may hold :data:`~alseg.core.partial_labels.UNKNOWN` voxels.
            region: Optional ``bool [1, X, Y, Z]``: the patch centre is drawn from these voxels (a labelled box), so
                that the patch holds labelled voxels; foreground-centred patches use its known foreground voxels.
                Without it the centre is any voxel (or any foreground voxel).
        """
        wants_foreground = bool(torch.rand(()) < self.foreground_probability)
        seed = int(torch.randint(0, 2**31 - 1, ()))
        padded = self.pad({"image": image, "label": label} | ({} if region is None else {"region": region}))
        known = (padded["label"] != UNKNOWN).all(0, keepdim=True)
        foreground = known & (padded["label"] > 0).any(0, keepdim=True)
        if region is not None:
            foreground = foreground & padded["region"]
        if wants_foreground and bool(foreground.any()):
            centres = foreground
        elif region is not None:
            centres = padded["region"]
        else:
            self.random_crop.set_random_state(seed)
            patch = self.random_crop({"image": padded["image"], "label": padded["label"]})
            return _plain(patch["image"]), _plain(patch["label"])
        self.foreground_crop.set_random_state(seed)
        patch = self.foreground_crop({"image": padded["image"], "label": padded["label"], "foreground": centres})[0]
        return _plain(patch["image"]), _plain(patch["label"])


def _plain(array: torch.Tensor) -> torch.Tensor:
    return convert_to_tensor(array, track_meta=False)
