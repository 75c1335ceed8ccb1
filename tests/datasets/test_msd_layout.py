import json
import re

import nibabel as nib
import numpy as np
import pytest

from alseg.core.errors import ConfigError, DataError
from alseg.datasets.msd_layout import discover_decathlon, read_dataset_json


def test_reads_dataset_json(msd_dir):
    task = read_dataset_json(msd_dir)
    assert task.name == "SyntheticBrainTumour"
    assert task.modalities == ("FLAIR", "T1w", "t1gd", "T2w")
    assert task.labels == {
        0: "background",
        1: "edema",
        2: "non-enhancing tumor",
        3: "enhancing tumour",
    }
    assert len(task.training) == 3 and task.test == ("./imagesTs/BRATS_004.nii.gz",)


def test_discovers_training_cases_with_4d_channels(msd_dir):
    cases = discover_decathlon(msd_dir)
    assert [c.case_id for c in cases] == ["BRATS_001", "BRATS_002", "BRATS_003"]
    first = cases[0]
    assert first.modalities == ("FLAIR", "T1w", "t1gd", "T2w")
    assert [s.channel for s in first.images.values()] == [0, 1, 2, 3]
    assert {s.path for s in first.images.values()} == {msd_dir / "imagesTr" / "BRATS_001.nii.gz"}
    assert first.label == msd_dir / "labelsTr" / "BRATS_001.nii.gz"
    assert first.files == (first.images["FLAIR"].path, first.label)


def test_discovers_unlabelled_test_cases(msd_dir):
    (case,) = discover_decathlon(msd_dir, split="test")
    assert case.case_id == "BRATS_004" and case.label is None


def test_selects_modalities_case_insensitively_in_given_order(msd_dir):
    case = discover_decathlon(msd_dir, modalities=["t2w", "flair"])[0]
    assert case.modalities == ("T2w", "FLAIR")
    assert [s.channel for s in case.images.values()] == [3, 0]
    with pytest.raises(ConfigError, match=r"Unknown modality 'pd' .*Available: FLAIR, T1w"):
        discover_decathlon(msd_dir, modalities=["pd"])
    with pytest.raises(ConfigError, match="twice"):
        discover_decathlon(msd_dir, modalities=["FLAIR", "flair"])
    with pytest.raises(ConfigError, match="Unknown Decathlon split 'val'"):
        discover_decathlon(msd_dir, split="val")


def test_dataset_json_pointing_to_missing_file(msd_dir):
    (msd_dir / "labelsTr" / "BRATS_002.nii.gz").unlink()
    expected = "Case BRATS_002: " + str(msd_dir / "dataset.json") + " lists label file ./labelsTr/BRATS_002.nii.gz"
    with pytest.raises(DataError, match=re.escape(expected)):
        discover_decathlon(msd_dir)


def _edit_json(msd_dir, **changes):
    path = msd_dir / "dataset.json"
    content = json.loads(path.read_text())
    content.update(changes)
    path.write_text(json.dumps(content))


def test_malformed_dataset_json(tmp_path, msd_dir):
    with pytest.raises(DataError, match=r"has no dataset\.json\. Expected a Medical Segmentation"):
        discover_decathlon(tmp_path)
    _edit_json(msd_dir, labels={"background": 0, "edema": 1})
    with pytest.raises(DataError, match="keys of 'labels' must be integers"):
        read_dataset_json(msd_dir)
    _edit_json(msd_dir, labels={"0": "background"}, training={"image": "./imagesTr/BRATS_001.nii.gz"})
    with pytest.raises(DataError, match=r"'training' must be a list\. Got \{'image'"):
        read_dataset_json(msd_dir)
    (msd_dir / "dataset.json").write_text("{not json")
    with pytest.raises(DataError, match="is not valid JSON"):
        read_dataset_json(msd_dir)


def test_duplicate_case_is_an_error(msd_dir):
    entry = {"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}
    _edit_json(msd_dir, training=[entry, entry])
    with pytest.raises(DataError, match="Case BRATS_001: listed twice"):
        discover_decathlon(msd_dir)


def test_single_modality_task_uses_3d_images(tmp_path):
    for folder in ("imagesTr", "labelsTr"):
        (tmp_path / folder).mkdir()
    nib.save(
        nib.Nifti1Image(np.ones((4, 4, 3), np.float32), np.eye(4)),
        tmp_path / "imagesTr/la_003.nii.gz",
    )
    nib.save(
        nib.Nifti1Image(np.zeros((4, 4, 3), np.uint8), np.eye(4)),
        tmp_path / "labelsTr/la_003.nii.gz",
    )
    description = {
        "modality": {"0": "MRI"},
        "labels": {"0": "background", "1": "left atrium"},
        "training": [{"image": "./imagesTr/la_003.nii.gz", "label": "./labelsTr/la_003.nii.gz"}],
    }
    (tmp_path / "dataset.json").write_text(json.dumps(description))
    (case,) = discover_decathlon(tmp_path)
    assert case.case_id == "la_003" and case.images["MRI"].channel is None
    assert read_dataset_json(tmp_path).test == ()


def test_dataset_json_that_is_not_an_object(msd_dir):
    (msd_dir / "dataset.json").write_text(json.dumps([{"image": "./imagesTr/BRATS_001.nii.gz"}]))
    expected = f"{msd_dir / 'dataset.json'} must hold a JSON object (a mapping of entries). Got a list."
    with pytest.raises(DataError, match=re.escape(expected)):
        read_dataset_json(msd_dir)


@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        ({"image": 3, "label": None}, "{'image': 3, 'label': None}"),
        ({"image": "./imagesTr/BRATS_001.nii.gz"}, "{'image': './imagesTr/BRATS_001.nii.gz'}"),
        ("./imagesTr/BRATS_001.nii.gz", "'./imagesTr/BRATS_001.nii.gz'"),
    ],
)
def test_training_entry_without_string_paths_names_file_and_entry(msd_dir, entry, shown):
    valid = {"image": "./imagesTr/BRATS_002.nii.gz", "label": "./labelsTr/BRATS_002.nii.gz"}
    _edit_json(msd_dir, training=[valid, entry])
    expected = (
        f"{msd_dir / 'dataset.json'}: 'training' entry 1 must be an object with string 'image' and 'label' "
        f"paths. Got {shown}."
    )
    with pytest.raises(DataError, match=re.escape(expected)):
        read_dataset_json(msd_dir)


def test_test_entry_that_is_not_a_string_names_file_and_entry(msd_dir):
    _edit_json(msd_dir, test=["./imagesTs/BRATS_004.nii.gz", {"image": "./imagesTs/BRATS_004.nii.gz"}])
    expected = f"{msd_dir / 'dataset.json'}: 'test' entry 1 must be a string path. Got {{'image': "
    with pytest.raises(DataError, match=re.escape(expected)):
        read_dataset_json(msd_dir)
