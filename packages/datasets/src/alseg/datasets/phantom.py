"""Synthetic brain-like volumes with optional tumours (pure numpy/scipy, no I/O).

A phantom is a smooth, slightly irregular brain ellipsoid with central ventricles, smooth tissue
texture and noise, imaged in four modalities with different contrasts (canonical order
``flair, t1, t1ce, t2``). A tumour has nested sub-regions, necrotic core ⊂ enhancing rim ⊂
edema, visible in every modality and spanning only part of the slices. Voxels outside the brain
are exactly 0, as in skull-stripped BraTS data.
"""

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

NECROTIC, EDEMA, ENHANCING = 1, 2, 3
"""Tumour codes of :attr:`Phantom.tumour` (writers map them to a dataset's label values)."""

# Mean intensity of tissue classes (rows: brain, ventricle/CSF, edema, enhancing, necrotic) in
# each modality (columns: flair, t1, t1ce, t2), roughly following real MR contrasts.
_CONTRAST = np.array(
    [
        [0.50, 0.60, 0.60, 0.45],
        [0.15, 0.20, 0.20, 0.95],
        [0.90, 0.50, 0.50, 0.85],
        [0.80, 0.45, 1.00, 0.70],
        [0.60, 0.25, 0.25, 0.90],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class Phantom:
    """One synthetic case.

    Attributes:
        image: ``float32 [4, X, Y, Z]``, modalities ``flair, t1, t1ce, t2``; 0 outside the brain.
        tumour: ``uint8 [X, Y, Z]`` with 0 (no tumour), ``NECROTIC`` (1), ``EDEMA`` (2),
            ``ENHANCING`` (3).
    """

    image: np.ndarray
    tumour: np.ndarray


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float | tuple[float, ...]) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to unit standard deviation."""
    field = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="wrap")
    return field / max(float(field.std()), 1e-6)


def tumour_contrasts(tumour_contrast: float) -> np.ndarray:
    """The contrast table with the tumour rows moved towards healthy brain: 1 keeps them, 0 makes tumours invisible.

    Blended in float64, so ``tumour_contrast=1`` gives the table's float32 values exactly.
    """
    table = _CONTRAST.astype(np.float64)
    table[2:] = table[0] + tumour_contrast * (table[2:] - table[0])
    return table.astype(np.float32)


def make_phantom(
    shape: tuple[int, int, int], rng: np.random.Generator, with_tumour: bool, tumour_contrast: float = 1.0
) -> Phantom:
    """Draw one phantom.

    Args:
        shape: Spatial shape ``(X, Y, Z)``.
        rng: Source of all randomness (same state → identical phantom).
        with_tumour: Whether to place a tumour.
        tumour_contrast: How far tumour intensities stand out from healthy brain (1: the default contrasts; lower
            values make tumours harder to see and to learn, see :func:`tumour_contrasts`).

    Returns:
        The phantom.
    """
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    sigma = max(min(shape) / 8, 1.0)
    radii = np.array([0.85, 0.9, 0.8]) * rng.uniform(0.92, 1.0, 3)
    brain_r = np.sqrt(((grid / radii[:, None, None, None]) ** 2).sum(0))
    brain = brain_r + 0.05 * _smooth_noise(rng, shape, sigma) < 1.0
    ventricle_r = np.sqrt(((grid / np.array([0.18, 0.32, 0.22])[:, None, None, None]) ** 2).sum(0))
    tissue = np.where(ventricle_r < 1.0, 1, 0)
    tumour = np.zeros(shape, dtype=np.uint8)
    if with_tumour:
        centre = rng.uniform(-0.4, 0.4, 3)[:, None, None, None]
        size = rng.uniform(0.25, 0.38)
        distance = np.sqrt(((grid - centre) ** 2).sum(0)) / size
        distance = distance + 0.12 * _smooth_noise(rng, shape, sigma)
        for code, radius, tissue_row in ((EDEMA, 1.0, 2), (ENHANCING, 0.65, 3), (NECROTIC, 0.4, 4)):
            region = brain & (distance < radius)
            tumour[region] = code
            tissue[region] = tissue_row
    texture = _smooth_noise(rng, (4, *shape), (0, sigma, sigma, sigma))
    scale = rng.uniform(800, 1200, 4).astype(np.float32)[:, None, None, None]
    noise = rng.standard_normal((4, *shape), dtype=np.float32)
    image = (np.moveaxis(tumour_contrasts(tumour_contrast)[tissue], -1, 0) + 0.05 * texture + 0.02 * noise) * scale
    image = np.where(brain, np.maximum(image, 1.0), 0.0).astype(np.float32)
    return Phantom(image, tumour)
