import hashlib

import nibabel as nib
import numpy as np
import pytest

from alseg.core.errors import ConfigError
from alseg.datasets import phantom, synthetic
from alseg.datasets.brats_layout import discover_brats
from alseg.datasets.make_data import main
from alseg.datasets.msd_layout import discover_decathlon
from alseg.datasets.phantom import tumour_contrasts
from alseg.datasets.synthetic import SyntheticBraTS, ensure_synthetic_brats, write_brats, write_decathlon

SMALL = (16, 16, 12)


def _digests(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.nii*"))}


def _labels(folder):
    return [np.asarray(nib.load(c.label).dataobj) for c in discover_brats(folder)]


def test_same_seed_gives_identical_files_other_seed_differs(tmp_path):
    first = write_brats(tmp_path / "a", 3, SMALL, seed=7)
    again = write_brats(tmp_path / "b", 3, SMALL, seed=7)
    other = write_brats(tmp_path / "c", 3, SMALL, seed=8)
    assert _digests(first) == _digests(again)
    flair = [nib.load(c.images["flair"].path).get_fdata() for c in discover_brats(first)]
    flair_other = [nib.load(c.images["flair"].path).get_fdata() for c in discover_brats(other)]
    assert not any(np.array_equal(a, b) for a, b in zip(flair, flair_other, strict=True))


def test_tumour_only_in_some_cases_and_slices(tmp_path):
    labels = _labels(write_brats(tmp_path / "d", 4, SMALL, seed=1, tumour_fraction=0.5))
    with_tumour = [label.any() for label in labels]
    assert sum(with_tumour) == 2
    for label in (lab for lab in labels if lab.any()):
        assert set(np.unique(label)) == {0, 1, 2, 4}
        slices_with_tumour = label.any((0, 1)).sum()
        assert 0 < slices_with_tumour < SMALL[2] * 0.7


def test_modalities_differ_and_background_is_zero(tmp_path):
    case = discover_brats(write_brats(tmp_path / "d", 1, SMALL, tumour_fraction=1.0))[0]
    images = {m: nib.load(s.path).get_fdata() for m, s in case.images.items()}
    brain = images["flair"] != 0
    assert 0.1 < brain.mean() < 0.9
    assert all(np.array_equal(image != 0, brain) for image in images.values())
    tumour = np.asarray(nib.load(case.label).dataobj) == 4
    assert images["t1ce"][tumour].mean() > 1.3 * images["t1ce"][brain & ~tumour].mean()
    header = nib.load(case.label).header
    assert header.get_zooms() == (1.0, 1.0, 1.5)


def test_tumour_contrast_fades_tumours_towards_brain_and_one_keeps_the_data(tmp_path):
    assert np.array_equal(tumour_contrasts(1.0), phantom._CONTRAST)

    def t1ce_gap(contrast):  # mean enhancing-tumour minus healthy-brain t1ce intensity
        folder = write_brats(tmp_path / f"c{contrast}", 1, SMALL, tumour_fraction=1.0, tumour_contrast=contrast)
        case = discover_brats(folder)[0]
        t1ce, flair = (nib.load(case.images[m].path).get_fdata() for m in ("t1ce", "flair"))
        tumour = np.asarray(nib.load(case.label).dataobj) == 4
        return t1ce[tumour].mean() - t1ce[(flair != 0) & ~tumour].mean(), tumour

    (full, full_tumour), (faint, faint_tumour) = t1ce_gap(1.0), t1ce_gap(0.25)
    assert np.array_equal(full_tumour, faint_tumour)  # the same anatomy, only fainter
    assert 0.2 < faint / full < 0.45  # 0.25 of the contrast, plus texture and noise
    with pytest.raises(ConfigError, match="tumour contrast must be in"):
        write_brats(tmp_path / "x", 1, SMALL, tumour_contrast=0.0)


def test_release_2023_uses_label_3(tmp_path):
    labels = _labels(write_brats(tmp_path / "d", 2, SMALL, release="2023", tumour_fraction=1.0))
    assert set(np.unique(np.concatenate([label.ravel() for label in labels]))) == {0, 1, 2, 3}


def test_decathlon_layout(tmp_path):
    folder = write_decathlon(tmp_path / "m", 2, SMALL, n_test=1, tumour_fraction=1.0)
    (case, _) = discover_decathlon(folder)
    assert nib.load(case.images["FLAIR"].path).shape == (*SMALL, 4)
    assert set(np.unique(np.asarray(nib.load(case.label).dataobj))) == {0, 1, 2, 3}
    assert [c.case_id for c in discover_decathlon(folder, split="test")] == ["BRATS_003"]


def test_bad_options_are_config_errors(tmp_path):
    for kwargs in (
        {"n_cases": 0},
        {"shape": (8, 8)},
        {"tumour_fraction": 1.5},
        {"release": "2019"},
    ):
        with pytest.raises(ConfigError):
            write_brats(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("")
    with pytest.raises(ConfigError, match="must not exist or be empty"):
        write_brats(tmp_path / "full", 1, SMALL)


def test_ensure_generates_once_per_options(tmp_path, monkeypatch):
    first = ensure_synthetic_brats(tmp_path, SyntheticBraTS(cases=2, shape=SMALL, seed=3))
    assert len(discover_brats(first)) == 2

    def fail(*args, **kwargs):
        raise AssertionError("generated again")

    monkeypatch.setattr(synthetic, "write_brats", fail)
    assert ensure_synthetic_brats(tmp_path, SyntheticBraTS(cases=2, shape=SMALL, seed=3)) == first
    monkeypatch.undo()
    other = ensure_synthetic_brats(tmp_path, SyntheticBraTS(cases=2, shape=SMALL, seed=4))
    assert other != first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, other.name])


def test_cli_writes_data(tmp_path, capsys):
    assert main([str(tmp_path / "b"), "--cases", "2", "--shape", "8", "8", "6", "--release", "2023"]) == 0
    assert [c.case_id for c in discover_brats(tmp_path / "b")] == [
        "BraTS-GLI-00000-000",
        "BraTS-GLI-00001-000",
    ]
    assert main([str(tmp_path / "m"), "--layout", "decathlon", "--cases", "1", "--shape", "8", "8", "6"]) == 0
    assert len(discover_decathlon(tmp_path / "m", split="test")) == 2
    assert "Wrote a synthetic decathlon dataset of 1 cases" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cases", "0"], "number of cases must be >= 1. Got 0"),
        (["--release", "2019"], "invalid choice: '2019'"),
        (["--shape", "8", "8"], "expected 3 arguments"),
        (
            ["--layout", "decathlon", "--release", "2023"],
            "--release applies to --layout brats only",
        ),
        (["--test-cases", "1"], "--test-cases applies to --layout decathlon only"),
        (["--tumour-fraction", "2"], "tumour fraction must be in [0, 1]. Got 2.0"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path, capsys, args, message):
    assert main([str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_non_empty_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("")
    assert main([str(tmp_path), "--cases", "1"]) == 2
    assert "must not exist or be empty" in capsys.readouterr().err
