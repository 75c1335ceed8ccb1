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
