"""Deterministic synthetic datasets on disk (BraTS and Decathlon layouts), generated once into a cache.

Files are real NIfTI with a non-identity affine (voxel size ``1 x 1 x 1.5`` mm, x and y flipped as
in BraTS files), so reading, reorientation and spacing code paths are exercised. The same
options and seed always give byte-identical files. Defaults are small (12 cases of
``48 x 48 x 32``) so that a whole 2D active-learning experiment runs in minutes on a CPU.
"""

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from alseg.core.errors import ConfigError
from alseg.datasets.brats_layout import (
    CANONICAL_MODALITIES,
    EXTENSIONS,
    brats_case_id,
    brats_file_name,
)
from alseg.datasets.phantom import EDEMA, ENHANCING, NECROTIC, Phantom, make_phantom

DEFAULT_SHAPE = (48, 48, 32)
SPACING = (1.0, 1.0, 1.5)
_VERSION = 1  # bump when the generated data changes, to invalidate ensure_synthetic_brats folders
_MSD_LABELS = {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}
_MSD_MODALITIES = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}


def _phantoms(
    n_cases: int, shape: Sequence[int], seed: int, tumour_fraction: float, tumour_contrast: float = 1.0
) -> Iterator[Phantom]:
    """``n_cases`` phantoms; exactly ``round(tumour_fraction * n_cases)`` have a tumour."""
    if n_cases < 1:
        raise ConfigError(f"The number of cases must be >= 1. Got {n_cases}.")
    if len(shape) != 3 or min(shape) < 4:
        raise ConfigError(f"The shape must be 3 sizes, each >= 4. Got {tuple(shape)}.")
    if not 0.0 <= tumour_fraction <= 1.0:
        raise ConfigError(f"The tumour fraction must be in [0, 1]. Got {tumour_fraction}.")
    if not 0.0 < tumour_contrast <= 1.0:
        raise ConfigError(f"The tumour contrast must be in (0, 1]. Got {tumour_contrast}.")
    sequence = np.random.SeedSequence(seed)
    order = np.random.default_rng(sequence.spawn(1)[0]).permutation(n_cases)
    with_tumour = order < round(tumour_fraction * n_cases)
    return (  # lazy, but the options are checked before anything is written
        make_phantom(tuple(shape), np.random.default_rng(case_seed), bool(tumour), tumour_contrast)
        for case_seed, tumour in zip(sequence.spawn(n_cases), with_tumour, strict=True)
    )


def _affine(shape: Sequence[int]) -> np.ndarray:
    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    affine[:3, 3] = [SPACING[0] * (shape[0] - 1) / 2, SPACING[1] * (shape[1] - 1) / 2, 0.0]
    return affine


def _save(data: np.ndarray, affine: np.ndarray, path: Path) -> None:
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    nib.save(image, path)


def _labels(tumour: np.ndarray, values: dict[int, int]) -> np.ndarray:
    label = np.zeros_like(tumour)
    for code, value in values.items():
        label[tumour == code] = value
    return label


def prepare_out_dir(out_dir: Path) -> None:
    """Creates ``out_dir`` for a writer; raises a ``ConfigError`` if it exists and is not an empty folder."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"Output folder {out_dir} must not exist or be empty.")
    out_dir.mkdir(parents=True, exist_ok=True)


def write_brats(
    out_dir: str | Path,
    n_cases: int = 12,
    shape: Sequence[int] = DEFAULT_SHAPE,
    seed: int = 0,
    tumour_fraction: float = 0.75,
    release: str = "2021",
    extension: str = ".nii.gz",
    tumour_contrast: float = 1.0,
) -> Path:
    """Write a synthetic BraTS folder (one sub-folder per case, modalities and ``seg``).

    Args:
        out_dir: Folder to create (must not exist or be empty).
        n_cases: Number of cases.
        shape: Spatial shape ``(X, Y, Z)`` of every volume.
        seed: Seed of all randomness.
        tumour_fraction: Fraction of cases that have a tumour.
        release: Naming and label convention: ``"2020"``, ``"2021"`` or ``"2023"``.
        extension: ``".nii.gz"`` or ``".nii"``.
        tumour_contrast: How far tumours stand out from healthy brain, in (0, 1]
            (:func:`~alseg.datasets.phantom.make_phantom`).

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    brats_case_id(release, 0)  # validates the release before anything is written
    if extension not in EXTENSIONS:
        raise ConfigError(f"Unknown extension {extension!r}. Available: {', '.join(EXTENSIONS)}.")
    phantoms = _phantoms(n_cases, shape, seed, tumour_fraction, tumour_contrast)
    prepare_out_dir(out_dir)
    affine = _affine(shape)
    values = {NECROTIC: 1, EDEMA: 2, ENHANCING: 3 if release == "2023" else 4}
    for index, phantom in enumerate(phantoms):
        case_id = brats_case_id(release, index)
        (out_dir / case_id).mkdir()
        for modality, data in zip(CANONICAL_MODALITIES, phantom.image, strict=True):
            name = brats_file_name(case_id, release, modality, extension)
            _save(data, affine, out_dir / case_id / name)
        seg = brats_file_name(case_id, release, "seg", extension)
        _save(_labels(phantom.tumour, values), affine, out_dir / case_id / seg)
    return out_dir


def write_decathlon(
    out_dir: str | Path,
    n_cases: int = 12,
    shape: Sequence[int] = DEFAULT_SHAPE,
    seed: int = 0,
    tumour_fraction: float = 0.75,
    n_test: int = 2,
    tumour_contrast: float = 1.0,
) -> Path:
    """Write a synthetic Decathlon task folder in the numbering of Task01_BrainTumour.

    ``imagesTr/BRATS_001.nii.gz`` etc. are 4D ``[X, Y, Z, 4]`` (FLAIR, T1w, t1gd, T2w);
    ``labelsTr`` use 1 edema, 2 non-enhancing tumour, 3 enhancing tumour; ``imagesTs`` holds
    ``n_test`` unlabelled cases. Arguments are as for :func:`write_brats`.

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    if n_test < 0:
        raise ConfigError(f"The number of test cases must be >= 0. Got {n_test}.")
    phantoms = _phantoms(n_cases + n_test, shape, seed, tumour_fraction, tumour_contrast)
    prepare_out_dir(out_dir)
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        (out_dir / folder).mkdir()
    affine = _affine(shape)
    training, test = [], []
    for index, phantom in enumerate(phantoms):
        name = f"BRATS_{index + 1:03d}.nii.gz"
        image = np.moveaxis(phantom.image, 0, -1)
        if index < n_cases:
            _save(image, affine, out_dir / "imagesTr" / name)
            label = _labels(phantom.tumour, {EDEMA: 1, NECROTIC: 2, ENHANCING: 3})
            _save(label, affine, out_dir / "labelsTr" / name)
            training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        else:
            _save(image, affine, out_dir / "imagesTs" / name)
            test.append(f"./imagesTs/{name}")
    description = {
        "name": "SyntheticBrainTumour",
        "tensorImageSize": "4D",
        "modality": _MSD_MODALITIES,
        "labels": _MSD_LABELS,
        "numTraining": n_cases,
        "numTest": n_test,
        "training": training,
        "test": test,
    }
    (out_dir / "dataset.json").write_text(json.dumps(description, indent=2))
    return out_dir


@dataclass(frozen=True)
class SyntheticBraTS:
    """Options of a generated BraTS-layout dataset (see :func:`write_brats`).

    Attributes:
        cases: Number of cases.
        shape: Spatial shape ``(X, Y, Z)`` of every volume.
        seed: Seed of all randomness.
        tumour_fraction: Fraction of cases that have a tumour (real BraTS cases all have one).
        tumour_contrast: How far tumours stand out from healthy brain, in (0, 1].
    """

    cases: int = 12
    shape: tuple[int, int, int] = DEFAULT_SHAPE
    seed: int = 0
    tumour_fraction: float = 0.75
    tumour_contrast: float = 1.0


def ensure_synthetic_brats(
    cache_root: str | Path, options: SyntheticBraTS = SyntheticBraTS(), release: str = "2021"
) -> Path:
    """A synthetic BraTS folder under ``cache_root`` for these options, generated only once (:func:`generate_once`).

    Args:
        cache_root: Folder that holds generated datasets.
        options: What to generate (see :func:`write_brats`).
        release: Naming and label convention: ``"2020"``, ``"2021"`` or ``"2023"``.

    Returns:
        The dataset folder, ``cache_root/brats<release>-<n>cases-<X>x<Y>x<Z>-seed<s>-...``.
    """
    n_cases, shape, seed, tumour_fraction = options.cases, options.shape, options.seed, options.tumour_fraction
    size = "x".join(str(n) for n in shape)
    contrast = f"-contrast{options.tumour_contrast:g}" if options.tumour_contrast != 1.0 else ""  # 1: older names
    name = f"brats{release}-{n_cases}cases-{size}-seed{seed}-tumour{tumour_fraction:g}{contrast}-v{_VERSION}"

    def write(folder: Path) -> None:
        write_brats(folder, n_cases, shape, seed, tumour_fraction, release, tumour_contrast=options.tumour_contrast)

    return generate_once(Path(cache_root) / name, write)


def generate_once(target: Path, write: Callable[[Path], object]) -> Path:
    """``target``, generated by ``write(folder)`` unless it exists already.

    ``write`` fills a temporary folder beside ``target`` that is then renamed, so concurrent callers and interrupted
    runs never see a half-written folder.
    """
    if target.is_dir():
        return target
    temporary = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex}")
    try:
        write(temporary)
        os.rename(temporary, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return target
