import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from alseg.datasets.synthetic import write_brats, write_decathlon

TINY = (8, 8, 6)


@pytest.fixture
def brats_dir(tmp_path: Path) -> Path:
    """Three tiny BraTS 2021 cases (.nii.gz), all with a tumour."""
    return write_brats(tmp_path / "brats", n_cases=3, shape=TINY, tumour_fraction=1.0)


@pytest.fixture
def msd_dir(tmp_path: Path) -> Path:
    """A tiny Decathlon task: three 4D training cases and one test case."""
    return write_decathlon(tmp_path / "msd", n_cases=3, shape=TINY, n_test=1)


@pytest.fixture
def rewrite_nifti() -> Callable[..., None]:
    """Overwrite a NIfTI file with new data and/or affine (defaults: the file's own)."""

    def rewrite(path: Path, data: np.ndarray | None = None, affine: np.ndarray | None = None):
        image = nib.load(path)
        new_data = np.asanyarray(image.dataobj) if data is None else data
        new_affine = image.affine if affine is None else affine
        nib.save(nib.Nifti1Image(new_data, new_affine), path)

    return rewrite


SMALL = (16, 16, 8)


@pytest.fixture
def brats6_dir(tmp_path: Path) -> Path:
    """Six BraTS 2021 cases of 16 x 16 x 8 (.nii.gz), all with a tumour spanning some slices."""
    return write_brats(tmp_path / "brats6", n_cases=6, shape=SMALL, tumour_fraction=1.0)


@pytest.fixture
def msd6_dir(tmp_path: Path) -> Path:
    """A Decathlon task of six 4D training cases of 16 x 16 x 8 and two unlabelled test cases."""
    return write_decathlon(tmp_path / "msd6", n_cases=6, shape=SMALL, tumour_fraction=1.0, n_test=2)


TIMEPOINTS = {"00000": 3, "00001": 2, "00002": 1, "00003": 2, "00004": 1}
"""Patient number → timepoints of the ``brats2023_timepoints_dir`` fixture."""


@pytest.fixture
def brats2023_timepoints_dir(tmp_path: Path) -> Path:
    """BraTS 2023 cases ``BraTS-GLI-XXXXX-YYY`` of five patients with one to three timepoints ``YYY`` each."""
    names = [f"BraTS-GLI-{patient}-{t:03d}" for patient, n in TIMEPOINTS.items() for t in range(n)]
    folder = write_brats(tmp_path / "brats2023", n_cases=len(names), shape=TINY, tumour_fraction=1.0, release="2023")
    for index, name in enumerate(names):
        generated = f"BraTS-GLI-{index:05d}-000"
        for path in (folder / generated).iterdir():
            path.rename(path.with_name(path.name.replace(generated, name)))
        (folder / generated).rename(folder / f".{name}")  # hidden first: a new name may be a later case's old one
    for name in names:
        (folder / f".{name}").rename(folder / name)
    return folder


CT_SHAPE = (12, 12, 6)
CT_BODY = (slice(1, 11), slice(1, 11), slice(None))
CT_WATER = (slice(2, 4), slice(2, 4), slice(None))  # 0 HU, inside the body, outside the organ
CT_ORGAN = (slice(5, 11), slice(5, 11), slice(1, 5))  # label 1: 144 voxels


def write_ct_case(folder: Path, name: str, seed: int, organ_shift: float = 0.0, outlier: bool = False) -> None:
    """One CT case in HU: air -1000, soft tissue ~40, a 0 HU region, an organ (label 1) ~40 +- 30 HU."""
    rng = np.random.default_rng(seed)
    image = np.full(CT_SHAPE, -1000, np.int16)
    image[CT_BODY] = np.round(rng.normal(40, 10, image[CT_BODY].shape))
    image[CT_WATER] = 0
    image[CT_ORGAN] = np.round(rng.normal(40 + organ_shift, 30, image[CT_ORGAN].shape))
    if outlier:
        image[6, 6, 2] = 3000  # e.g. a metal clip: above the 99.5 percentile, clipped
    label = np.zeros(CT_SHAPE, np.uint8)
    label[CT_ORGAN] = 1
    nib.save(nib.Nifti1Image(image, np.eye(4)), folder / "imagesTr" / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(label, np.eye(4)), folder / "labelsTr" / f"{name}.nii.gz")


@pytest.fixture
def ct_dir(tmp_path: Path) -> Path:
    """A Decathlon CT task (``"modality": {"0": "CT"}``) of five cases ``ct_0`` ... ``ct_4``.

    ``ct_0``-``ct_2`` are alike (one holds an outlier voxel of 3000 HU); the organ of ``ct_3`` and
    ``ct_4`` is 500 HU brighter, so statistics that included them would be far off.
    """
    folder = tmp_path / "ct"
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True)
    for index in range(5):
        write_ct_case(folder, f"ct_{index}", index, organ_shift=500.0 * (index >= 3), outlier=index == 1)
    training = [{"image": f"./imagesTr/ct_{i}.nii.gz", "label": f"./labelsTr/ct_{i}.nii.gz"} for i in range(5)]
    description = {"modality": {"0": "CT"}, "labels": {"0": "background", "1": "organ"}, "training": training}
    (folder / "dataset.json").write_text(json.dumps(description))
    return folder


def _replace_keeping_mtime(target: Path, replacement: Path) -> None:
    before = target.stat()
    corrected = target.with_name(f".corrected-{target.name}")
    shutil.copy2(replacement, corrected)
    os.utime(corrected, ns=(before.st_atime_ns, before.st_mtime_ns))  # corrected elsewhere at the same time
    shutil.copy2(corrected, target)  # copied back with preserved times, like cp -p or rsync -a
    corrected.unlink()
    assert target.stat().st_mtime_ns == before.st_mtime_ns


@pytest.fixture
def replace_keeping_mtime() -> Callable[[Path, Path], None]:
    """Overwrite a file with another file's bytes, keeping its modification time (``cp -p``, ``rsync -a``)."""
    return _replace_keeping_mtime
