import pickle

import numpy as np
import pytest

from alseg.core.errors import ConfigError, DataError
from alseg.datasets.labels import (
    MSD_BRAIN_TUMOUR_REGIONS,
    brats_label_scheme,
    decathlon_label_scheme,
)

# One voxel each of background, necrotic core, edema, enhancing (BraTS <= 2021 numbering).
RAW_2021 = np.array([0, 1, 2, 4], dtype=np.float32).reshape(4, 1, 1)
RAW_2023 = np.array([0, 1, 2, 3], dtype=np.int16).reshape(4, 1, 1)
#                    bg  NCR  ED  ET
EXPECTED_REGIONS = [[0, 1, 0, 1], [0, 1, 1, 1], [0, 0, 0, 1]]  # TC, WT, ET


@pytest.mark.parametrize(("release", "raw"), [("2020", RAW_2021), ("2021", RAW_2021), ("2023", RAW_2023)])
def test_brats_multilabel_regions_per_release(release, raw):
    scheme = brats_label_scheme(release, "multilabel")
    target = scheme.convert(raw, "case", "seg.nii.gz")
    assert scheme.multilabel and scheme.class_names == ("TC", "WT", "ET")
    assert target.dtype == np.uint8 and target.shape == (3, 4, 1, 1)
    assert target[:, :, 0, 0].tolist() == EXPECTED_REGIONS


@pytest.mark.parametrize(("release", "raw"), [("2021", RAW_2021), ("2023", RAW_2023)])
def test_brats_multiclass_is_contiguous(release, raw):
    scheme = brats_label_scheme(release, "multiclass")
    target = scheme.convert(raw, "case", "seg.nii.gz")
    assert not scheme.multilabel
    assert scheme.class_names == ("background", "necrotic_core", "edema", "enhancing")
    assert target.dtype == np.uint8 and target.ravel().tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("release", "bad", "dtype"),
    [
        ("2021", 3, np.float32),
        ("2023", 4, np.float32),
        ("2021", 0.5, np.float32),
        ("2021", 3, np.uint8),  # counted, not sorted
        ("2021", -1, np.int16),
        ("2023", 70000, np.int32),  # beyond the counting range
    ],
)
def test_undeclared_label_values_name_case_file_and_values(release, bad, dtype):
    raw = np.array([0, 1, bad, bad], dtype=dtype).reshape(2, 2, 1)
    with pytest.raises(DataError, match=rf"Case X_1: label file X_1_seg\.nii\.gz holds values \[{bad}\]"):
        brats_label_scheme(release).convert(raw, "X_1", "X_1_seg.nii.gz")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float64])
def test_label_dtype_and_memory_order_do_not_change_the_target(dtype):
    raw = np.random.default_rng(0).choice([0, 1, 2, 4], size=(6, 5, 4)).astype(dtype)
    scheme = brats_label_scheme("2021")
    expected = scheme.convert(raw.astype(np.float32), "X_1", "seg")
    np.testing.assert_array_equal(scheme.convert(np.asfortranarray(raw)[::-1], "X_1", "seg"), expected[:, ::-1])


def test_scheme_names_differ_per_convention():
    names = {brats_label_scheme(r, m).name for r in ("2021", "2023") for m in ("multilabel", "multiclass", "binary")}
    assert len(names) == 6
    assert brats_label_scheme("2020").name == brats_label_scheme("2021").name


def test_unknown_mode_and_release():
    with pytest.raises(ConfigError, match=r"Unknown label mode 'softmax'\. Available: multilabel, multiclass, binary"):
        brats_label_scheme("2021", "softmax")
    with pytest.raises(ConfigError, match="Unknown BraTS release '2019'"):
        brats_label_scheme("2019")


def test_decathlon_multiclass_names_and_renumbering():
    scheme = decathlon_label_scheme({0: "background", 1: "liver", 5: "tumour"})
    assert scheme.class_names == ("background", "liver", "tumour")
    assert scheme.convert(np.array([5, 0, 1]), "c", "f").tolist() == [2, 0, 1]
    with pytest.raises(DataError, match=r"holds values \[2\] outside the declared labels \[0, 1, 5\]"):
        scheme.convert(np.array([2, 0]), "c", "f")


def test_decathlon_brain_tumour_regions_match_brats_regions():
    msd_labels = {0: "background", 1: "edema", 2: "non-enhancing tumor", 3: "enhancing tumour"}
    scheme = decathlon_label_scheme(msd_labels, MSD_BRAIN_TUMOUR_REGIONS)
    # bg, NCR, ED, ET in MSD numbering: 0, 2, 1, 3
    target = scheme.convert(np.array([0, 2, 1, 3]).reshape(4, 1, 1), "c", "f")
    assert scheme.multilabel and scheme.class_names == ("TC", "WT", "ET")
    assert target[:, :, 0, 0].tolist() == EXPECTED_REGIONS


def test_decathlon_regions_are_validated():
    labels = {0: "background", 1: "a", 2: "b"}
    for regions in ({}, {"x": []}, {"x": [3]}, {"x": [0, 1]}):
        with pytest.raises(ConfigError):
            decathlon_label_scheme(labels, regions)
    assert decathlon_label_scheme(labels, {"x": [1]}).name != decathlon_label_scheme(labels, {"x": [2]}).name


@pytest.mark.parametrize(
    ("scheme", "label"),
    [
        (brats_label_scheme("2021", "multiclass"), [[0, 1], [2, 4]]),
        (brats_label_scheme("2021", "multilabel"), [[0, 1], [2, 4]]),
        (decathlon_label_scheme({0: "bg", 1: "a", 2: "b"}), [[0, 1], [2, 2]]),
        (decathlon_label_scheme({0: "bg", 1: "a", 2: "b"}, {"ab": [1, 2]}), [[0, 1], [2, 2]]),
        (brats_label_scheme("2023", "binary"), [[0, 1], [2, 3]]),
    ],
)
def test_label_schemes_pickle_for_spawned_workers(scheme, label):
    label = np.array(label)
    assert np.array_equal(pickle.loads(pickle.dumps(scheme)).transform(label), scheme.transform(label))


@pytest.mark.parametrize(("release", "raw"), [("2020", RAW_2021), ("2021", RAW_2021), ("2023", RAW_2023)])
def test_brats_binary_merges_every_tumour_label(release, raw):
    scheme = brats_label_scheme(release, "binary")
    assert not scheme.multilabel and scheme.class_names == ("background", "foreground")
    target = scheme.convert(raw, "case", "seg.nii.gz")
    assert target.dtype == np.uint8 and target.ravel().tolist() == [0, 1, 1, 1]
    wrong_enhancing = 3 if release != "2023" else 4
    with pytest.raises(DataError, match=rf"holds values \[{wrong_enhancing}\]"):
        scheme.convert(np.array([0, wrong_enhancing]), "case", "seg.nii.gz")


def test_decathlon_binary_merges_every_foreground_label():
    labels = {0: "background", 1: "liver", 2: "tumour"}
    scheme = decathlon_label_scheme(labels, mode="binary")
    assert not scheme.multilabel and scheme.class_names == ("background", "foreground")
    assert scheme.convert(np.array([2, 0, 1, 1]), "c", "f").tolist() == [1, 0, 1, 1]
    assert scheme.name != decathlon_label_scheme({0: "background", 1: "liver"}, mode="binary").name
    assert scheme.name != decathlon_label_scheme(labels).name


def test_decathlon_mode_follows_regions_unless_given():
    labels = {0: "background", 1: "a", 2: "b"}
    assert decathlon_label_scheme(labels, {"ab": [1, 2]}).multilabel
    assert decathlon_label_scheme(labels, {"ab": [1, 2]}, "multilabel").multilabel
    assert not decathlon_label_scheme(labels, mode="multiclass").multilabel
    with pytest.raises(ConfigError, match=r"label mode 'multilabel' needs 'regions'"):
        decathlon_label_scheme(labels, mode="multilabel")
    with pytest.raises(ConfigError, match=r"'regions' .* label mode 'binary'"):
        decathlon_label_scheme(labels, {"ab": [1, 2]}, "binary")
    with pytest.raises(ConfigError, match="Unknown label mode 'regions'"):
        decathlon_label_scheme(labels, mode="regions")
