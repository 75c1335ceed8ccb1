"""Intensity normalisation by modality: CT with dataset-wide foreground statistics, MRI per case.

The ``normalization`` option of a data module (:data:`NORMALIZATIONS`):

* ``"auto"`` (default): per channel from its modality name: ``"ct"`` for a channel named CT (the
  Decathlon's ``dataset.json`` ``"modality"``, e.g. ``{"0": "CT"}``), else ``"nonzero_zscore"``
  (BraTS and the Decathlon's MRI tasks).
* ``"ct"``: nnU-Net's CT scheme. Clip to the 0.5 and 99.5 percentiles of the foreground
  intensities (label > 0) of the *training* cases, then z-score with their mean and standard
  deviation. The statistics are dataset-wide, so one Hounsfield value maps to one value in every
  case; air (-1000 HU) never enters them and 0 HU voxels (water) stay tissue, not holes.
* ``"nonzero_zscore"``: per case and channel, z-score over the non-zero voxels; zero voxels
  (outside the skull-stripped brain) stay 0 (MONAI's ``NormalizeIntensity(nonzero=True,
  channel_wise=True)``).

How the statistics are gathered without reading the training cases twice: while a case is
decoded, the cache records per channel the mean and standard deviation of its non-zero voxels
(:func:`nonzero_statistics`) and a seeded sample of :data:`SAMPLES_PER_CASE` foreground
intensities (:func:`foreground_sample`; drawn with replacement, as nnU-Net does, so that every case
weighs the same). Once the split is known, :func:`fit_normalizer` computes the CT statistics from
the samples of the training cases. The cache holds the decoded intensities and the normaliser is
applied when an item is read (a clip and an affine map per channel): the cached arrays depend
neither on the normalisation nor on the split the CT statistics come from, so changing either
never decodes again and never reads stale arrays. The normalisation and its statistics are part
of the data module's :meth:`~alseg.datasets.volume_data_module.VolumeDataModule.data_fingerprint`.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from alseg.core.errors import ConfigError, DataError

NORMALIZATIONS = ("auto", "ct", "nonzero_zscore")
SAMPLES_PER_CASE = 10_000
CT_PERCENTILES = (0.5, 99.5)
_SAMPLE_SEED = 1234  # nnU-Net's; the sample of a case depends on its content only


def check_normalization(normalization: str) -> str:
    """``normalization`` if it is one of :data:`NORMALIZATIONS`.

    Raises:
        ConfigError: Unknown value; the message lists the options.
    """
    if normalization not in NORMALIZATIONS:
        raise ConfigError(
            f"The 'normalization' option of the data module must be one of {', '.join(NORMALIZATIONS)}. "
            f"Got {normalization!r}."
        )
    return normalization


def channel_schemes(normalization: str, modalities: Sequence[str]) -> tuple[str, ...]:
    """The scheme (``"ct"`` or ``"nonzero_zscore"``) of each channel; ``"auto"`` follows the modality names."""
    if check_normalization(normalization) != "auto":
        return (normalization,) * len(modalities)
    return tuple("ct" if name.upper() == "CT" else "nonzero_zscore" for name in modalities)


def nonzero_statistics(image: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Per channel of ``float32 [C, X, Y, Z]``, ``(mean, std)`` of the non-zero voxels.

    A channel without non-zero voxels gets ``(0, 1)`` and a constant one std 1, so that normalising
    never divides by zero (as MONAI's ``NormalizeIntensity``).
    """
    statistics = []
    reversed_spatial = image.transpose(0, *range(image.ndim - 1, 0, -1))  # C-order channels of a Fortran-order image
    for channel in reversed_spatial:
        channel = np.ascontiguousarray(channel)  # one sequential copy; a mask on the strided view gathers slowly
        values = channel[channel != 0]
        mean = float(values.mean(dtype=np.float64)) if values.size else 0.0
        std = float(values.std(dtype=np.float64)) if values.size else 0.0
        statistics.append((mean, std or 1.0))
    return tuple(statistics)


def foreground_sample(image: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """``float32 [C, SAMPLES_PER_CASE]`` intensities at foreground voxels, drawn with replacement.

    Args:
        image: ``float32 [C, X, Y, Z]``.
        foreground: ``bool [X, Y, Z]``.

    Returns:
        The sample, or ``float32 [C, 0]`` if there is no foreground.
    """
    positions = np.flatnonzero(foreground)  # C order, as ``image[:, foreground]`` enumerates them
    if not positions.size:
        return np.empty((image.shape[0], 0), np.float32)
    chosen = np.random.default_rng(_SAMPLE_SEED).integers(0, positions.size, SAMPLES_PER_CASE)
    return image[(slice(None), *np.unravel_index(positions[chosen], foreground.shape))].astype(np.float32)


@dataclass(frozen=True)
class CTStatistics:
    """Dataset-wide foreground statistics of one CT channel.

    Attributes:
        lower: 0.5 percentile; intensities below are clipped to it.
        upper: 99.5 percentile; intensities above are clipped to it.
        mean: Mean of the (unclipped) foreground intensities.
        std: Their standard deviation (at least 1e-8).
    """

    lower: float
    upper: float
    mean: float
    std: float


@dataclass(frozen=True)
class Normalizer:
    """Normalises the images of one dataset channel by channel.

    Attributes:
        schemes: ``"ct"`` or ``"nonzero_zscore"`` per channel.
        ct: Per channel, the statistics of a ``"ct"`` channel, else ``None``.
    """

    schemes: tuple[str, ...]
    ct: tuple[CTStatistics | None, ...]

    def __call__(
        self, image: np.ndarray, nonzero: Sequence[tuple[float, float]], out: np.ndarray | None = None
    ) -> np.ndarray:
        """Normalise a case or any part of it (a slice, a patch).

        Args:
            image: ``float32 [C, *spatial]`` decoded intensities.
            nonzero: Per channel, ``(mean, std)`` of the non-zero voxels of the whole case
                (:func:`nonzero_statistics`), used by ``"nonzero_zscore"`` channels.
            out: ``float32 [C, *spatial]`` to write into; ``image`` itself normalises a copy in place.

        Returns:
            ``float32 [C, *spatial]`` (``out`` if given).
        """
        out = np.empty(image.shape, np.float32) if out is None else out  # no float64 temporaries
        for channel, target, ct, (mean, std) in zip(image, out, self.ct, nonzero, strict=True):
            if ct is None:
                keep = channel != 0  # before ``target`` (which may be ``channel``) is written
                np.subtract(channel, np.float32(mean), out=target)
                target /= np.float32(std)
                target *= keep  # zeros stay 0; faster than a masked assignment
            else:
                np.clip(channel, ct.lower, ct.upper, out=target)
                target -= np.float32(ct.mean)
                target /= np.float32(ct.std)
        return out

    def description(self) -> dict:
        """JSON-able description (schemes and statistics), part of the data fingerprint."""
        ct = [None if stats is None else [stats.lower, stats.upper, stats.mean, stats.std] for stats in self.ct]
        return {"schemes": list(self.schemes), "ct": ct}


def fit_normalizer(schemes: Sequence[str], modalities: Sequence[str], samples: Iterable[np.ndarray]) -> Normalizer:
    """The normaliser of a dataset, its CT statistics from the foreground samples of the training cases.

    Args:
        schemes: Per channel, ``"ct"`` or ``"nonzero_zscore"`` (:func:`channel_schemes`).
        modalities: Channel names, for error messages.
        samples: Per training case, its :func:`foreground_sample` ``[C, N]``; consumed only if a
            channel is CT.

    Raises:
        DataError: A CT channel, but no training case has foreground voxels.
    """
    if "ct" not in schemes:
        return Normalizer(tuple(schemes), (None,) * len(schemes))
    samples = list(samples)
    pooled = np.concatenate([*samples, np.empty((len(schemes), 0), np.float32)], axis=1)
    ct = []
    for values, scheme, name in zip(pooled, schemes, modalities, strict=True):
        if scheme != "ct":
            ct.append(None)
            continue
        if not values.size:
            raise DataError(
                f"CT normalisation of channel {name!r} needs foreground voxels (label > 0) in the training cases; "
                f"none of the {len(samples)} training cases has any."
            )
        lower, upper = (float(v) for v in np.percentile(values, CT_PERCENTILES))
        values = values.astype(np.float64)
        ct.append(CTStatistics(lower, upper, float(values.mean()), max(float(values.std()), 1e-8)))
    return Normalizer(tuple(schemes), tuple(ct))
