import re
import shutil
from pathlib import Path

import pytest

from alseg.core.errors import ConfigError, DataError
from alseg.datasets.brats_layout import (
    brats_case_id,
    detect_release,
    discover_brats,
    resolve_modalities,
)
from alseg.datasets.synthetic import write_brats

TINY = (8, 8, 6)


@pytest.mark.parametrize(
    ("release", "extension", "first_id", "flair_name"),
    [
        ("2020", ".nii.gz", "BraTS20_Training_001", "BraTS20_Training_001_flair.nii.gz"),
        ("2021", ".nii", "BraTS2021_00000", "BraTS2021_00000_flair.nii"),
        ("2023", ".nii.gz", "BraTS-GLI-00000-000", "BraTS-GLI-00000-000-t2f.nii.gz"),
    ],
)
def test_discovers_every_release(tmp_path, release, extension, first_id, flair_name):
    data_dir = write_brats(tmp_path / "d", 2, TINY, release=release, extension=extension)
    assert detect_release(data_dir) == release
    cases = discover_brats(data_dir)
    assert [c.case_id for c in cases] == [first_id, brats_case_id(release, 1)]
    first = cases[0]
    assert first.modalities == ("flair", "t1", "t1ce", "t2")
    assert first.images["flair"].path == data_dir / first_id / flair_name
    assert all(source.channel is None for source in first.images.values())
    assert first.label.name == flair_name.replace("flair", "seg").replace("t2f", "seg")
    assert discover_brats(data_dir, release=release)[0] == first


def test_release_2023_file_names_per_canonical_modality(tmp_path):
    data_dir = write_brats(tmp_path / "d", 1, TINY, release="2023")
    case = discover_brats(data_dir)[0]
    suffixes = {m: s.path.name.removesuffix(".nii.gz").rsplit("-", 1)[1] for m, s in case.images.items()}
    assert suffixes == {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w"}


@pytest.mark.parametrize("names", [["t1c", "FLAIR"], ["t1ce", "t2f"], ["T1GD", "flair"]])
def test_modality_aliases_select_the_same_files_in_given_order(brats_dir, names):
    case = discover_brats(brats_dir, modalities=names)[0]
    assert case.modalities == ("t1ce", "flair")
    assert case.images["t1ce"].path.name == "BraTS2021_00000_t1ce.nii.gz"
    assert case.images["flair"].path.name == "BraTS2021_00000_flair.nii.gz"


def test_resolve_modalities_rejects_unknown_and_duplicate_names():
    with pytest.raises(ConfigError, match=r"Unknown BraTS modality 'pd'\. Available: flair, t1,"):
        resolve_modalities(["pd"])
    with pytest.raises(ConfigError, match="twice"):
        resolve_modalities(["t1ce", "t1c"])
    with pytest.raises(ConfigError, match="non-empty list"):
        resolve_modalities("flair")


def test_missing_modality_file_names_case_file_and_folder(brats_dir):
    case_dir = brats_dir / "BraTS2021_00001"
    (case_dir / "BraTS2021_00001_t1ce.nii.gz").unlink()
    expected = f"Case BraTS2021_00001: missing modality file BraTS2021_00001_t1ce.nii.gz in {case_dir}."
    with pytest.raises(DataError, match=re.escape(expected)):
        discover_brats(brats_dir)
    assert len(discover_brats(brats_dir, modalities=["flair", "t2"])) == 3


def test_missing_label_is_an_error_unless_labels_are_optional(brats_dir):
    (brats_dir / "BraTS2021_00002" / "BraTS2021_00002_seg.nii.gz").unlink()
    with pytest.raises(DataError, match=r"Case BraTS2021_00002: missing label file BraTS2021_00002_seg"):
        discover_brats(brats_dir)
    cases = discover_brats(brats_dir, require_labels=False)
    assert [c.label is None for c in cases] == [False, False, True]


def test_missing_empty_and_wrong_data_dir(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        discover_brats(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no case folders\. Expected .*BraTS2021_00000 \(2021\)"):
        discover_brats(tmp_path / "empty")
    (tmp_path / "wrong" / "MICCAI_BraTS2020_TrainingData").mkdir(parents=True)
    with pytest.raises(DataError, match="folder 'MICCAI_BraTS2020_TrainingData' is not a case folder"):
        discover_brats(tmp_path / "wrong")


def test_mixed_releases_and_release_mismatch(tmp_path, brats_dir):
    other = write_brats(tmp_path / "d2023", 1, TINY, release="2023")
    shutil.copytree(other / "BraTS-GLI-00000-000", brats_dir / "BraTS-GLI-00000-000")
    with pytest.raises(DataError, match=r"mixes releases: 2021 \(e\.g\. BraTS2021_00000\), 2023"):
        discover_brats(brats_dir)
    with pytest.raises(DataError, match=r"holds release 2023 case folders, but release '2021'"):
        discover_brats(other, release="2021")
    with pytest.raises(ConfigError, match="Unknown BraTS release '2019'"):
        discover_brats(other, release="2019")


def test_both_extensions_present_is_ambiguous(brats_dir):
    case_dir = brats_dir / "BraTS2021_00000"
    shutil.copy(case_dir / "BraTS2021_00000_t2.nii.gz", case_dir / "BraTS2021_00000_t2.nii")
    with pytest.raises(DataError, match=r"Case BraTS2021_00000: both .*_t2\.nii\.gz and .*_t2\.nii"):
        discover_brats(brats_dir)


def test_stray_files_and_hidden_folders_are_ignored(brats_dir):
    (brats_dir / "name_mapping.csv").write_text("a,b\n")
    (brats_dir / ".ipynb_checkpoints").mkdir()
    assert len(discover_brats(Path(brats_dir))) == 3


def test_2023_cases_are_timepoints_of_patients(brats2023_timepoints_dir):
    cases = discover_brats(brats2023_timepoints_dir)
    assert [(c.case_id, c.patient_id) for c in cases][:4] == [
        ("BraTS-GLI-00000-000", "BraTS-GLI-00000"),
        ("BraTS-GLI-00000-001", "BraTS-GLI-00000"),
        ("BraTS-GLI-00000-002", "BraTS-GLI-00000"),
        ("BraTS-GLI-00001-000", "BraTS-GLI-00001"),
    ]
    assert all(c.images["flair"].path.name == f"{c.case_id}-t2f.nii.gz" for c in cases)


def test_earlier_releases_have_one_case_per_patient(brats_dir):
    assert all(case.patient_id == case.case_id for case in discover_brats(brats_dir))
