"""Deterministic synthetic data in the BCSS layout: RGB tiles of blob-shaped tissue classes and their masks.

A tile's mask is a partition into smooth blobs of a few BCSS labels (tumour, stroma, lymphocytes, necrosis, with
some blood, fat or excluded areas), and, in some tiles, a band outside the region of interest (label 0). Its
colours follow the mask: every label has an H&E-like colour (tumour dark purple, stroma pink, lymphocytes dark
blue, necrosis pale, blood red, fat white), shifted per institute (as stains differ between sites), with smooth
texture and pixel noise, so a model can learn the classes from colour and an institute-stratified split matters.
Names follow BCSS (:func:`~alseg.datasets.bcss_layout.tile_name`): cases ``TCGA-<institute>-A<nnn>`` are dealt
round-robin over the institutes, each case holding ``tiles_per_case`` tiles. The same options and seed always give
byte-identical PNG files.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from alseg.core.errors import ConfigError
from alseg.datasets.bcss_layout import tile_name
from alseg.datasets.synthetic import generate_once, prepare_out_dir

INSTITUTES = ("A1", "OL", "A2", "LL", "AR", "E2", "BH", "EW", "A7", "GM", "C8", "S3")
"""Institutes of the synthetic cases in order of use; every other one is an official BCSS test institute."""
_VERSION = 1  # bump when the generated data changes, to invalidate ensure_synthetic_bcss folders
_TISSUE = (1, 2, 3, 4, 6, 9, 7)  # tumor, stroma, lymphocytic, necrosis, blood, fat, exclude
_WEIGHT = (1.0, 1.0, 0.6, 0.5, 0.2, 0.2, 0.1)  # how much area each label tends to take
_COLOUR = {
    0: (236, 232, 238),  # outside the region of interest: glass
    1: (112, 52, 142),  # tumor
    2: (222, 128, 172),  # stroma
    3: (58, 44, 128),  # lymphocytic infiltrate
    4: (196, 168, 186),  # necrosis or debris
    6: (204, 46, 58),  # blood
    9: (244, 238, 242),  # fat
    7: (150, 150, 156),  # exclude (pen marks, blur)
}


@dataclass(frozen=True)
class SyntheticBCSS:
    """Options of a generated BCSS-layout dataset (see :func:`write_bcss`).

    Attributes:
        tiles: Number of tiles.
        size: ``(H, W)`` of every tile.
        seed: Seed of all randomness.
        institutes: Number of institutes (1 to 12, from :data:`INSTITUTES`).
        tiles_per_case: Tiles of every case (the last case may have fewer).
    """

    tiles: int = 96
    size: tuple[int, int] = (64, 64)
    seed: int = 0
    institutes: int = 12
    tiles_per_case: int = 2


def _check(options: SyntheticBCSS) -> None:
    if options.tiles < 1:
        raise ConfigError(f"The number of tiles must be >= 1. Got {options.tiles}.")
    if len(options.size) != 2 or min(options.size) < 8:
        raise ConfigError(f"The tile size must be 2 sizes (H, W), each >= 8. Got {tuple(options.size)}.")
    if not 1 <= options.institutes <= len(INSTITUTES):
        raise ConfigError(f"The number of institutes must be in [1, {len(INSTITUTES)}]. Got {options.institutes}.")
    if options.tiles_per_case < 1:
        raise ConfigError(f"The number of tiles per case must be >= 1. Got {options.tiles_per_case}.")
    if -(-options.tiles // options.tiles_per_case) > 1000:
        raise ConfigError(f"At most 1000 cases. Got {options.tiles} tiles of {options.tiles_per_case} per case.")


def _mask(size: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """``uint8 [H, W]`` BCSS values: smooth blobs of tissue labels, sometimes a band outside the region (0)."""
    sigma = min(size) / 8
    fields = gaussian_filter(rng.standard_normal((len(_TISSUE), *size)), (0, sigma, sigma), mode="wrap")
    fields = (
        fields / fields.std() + np.log(np.asarray(_WEIGHT))[:, None, None] + rng.normal(0, 0.5, (len(_TISSUE), 1, 1))
    )
    mask = np.asarray(_TISSUE, np.uint8)[fields.argmax(0)]
    if rng.random() < 0.5:  # the region's border crosses the tile
        rows, cols = np.mgrid[0 : size[0], 0 : size[1]] / max(size)
        angle = rng.uniform(0, 2 * np.pi)
        mask[np.cos(angle) * rows + np.sin(angle) * cols > rng.uniform(0.9, 1.3)] = 0
    return mask


def _tile(mask: np.ndarray, stain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB: the labels' colours, the institute's stain shift, texture and noise."""
    colours = np.zeros((256, 3))
    for value, colour in _COLOUR.items():
        colours[value] = colour
    texture = gaussian_filter(rng.standard_normal(mask.shape), 1.5)[..., None] * 40
    image = colours[mask] + stain + texture + rng.normal(0, 8, (*mask.shape, 3))
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def write_bcss(out_dir: str | Path, options: SyntheticBCSS = SyntheticBCSS()) -> Path:
    """Write a synthetic BCSS folder: ``images/<name>.png`` (RGB) and ``masks/<name>.png`` (8-bit BCSS values).

    Args:
        out_dir: Folder to create (must not exist or be empty).
        options: What to generate.

    Returns:
        ``out_dir``.
    """
    _check(options)
    out_dir = Path(out_dir)
    prepare_out_dir(out_dir)
    for folder in ("images", "masks"):
        (out_dir / folder).mkdir()
    sequence = np.random.SeedSequence(options.seed)
    stains = np.random.default_rng(sequence.spawn(1)[0]).normal(0, 14, (options.institutes, 3))
    for index, tile_seed in enumerate(sequence.spawn(options.tiles)):
        case, position = divmod(index, options.tiles_per_case)
        institute = case % options.institutes
        rng = np.random.default_rng(tile_seed)
        mask = _mask(options.size, rng)
        name = tile_name(f"TCGA-{INSTITUTES[institute]}-A{case:03d}", 20000 + 4096 * position, 30000 + 1024 * case)
        Image.fromarray(_tile(mask, stains[institute], rng)).save(out_dir / "images" / f"{name}.png")
        Image.fromarray(mask).save(out_dir / "masks" / f"{name}.png")
    return out_dir


def ensure_synthetic_bcss(cache_root: str | Path, options: SyntheticBCSS = SyntheticBCSS()) -> Path:
    """A synthetic BCSS folder under ``cache_root`` for these options, generated only once.

    Returns:
        The dataset folder, ``cache_root/bcss-<tiles>tiles-<H>x<W>-seed<s>-<institutes>institutes-...``.
    """
    size = "x".join(str(n) for n in options.size)
    name = (
        f"bcss-{options.tiles}tiles-{size}-seed{options.seed}-{options.institutes}institutes-"
        f"{options.tiles_per_case}per-case-v{_VERSION}"
    )
    return generate_once(Path(cache_root) / name, lambda folder: write_bcss(folder, options))
