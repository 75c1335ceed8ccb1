"""The folder oracle: a scripted annotator gives the simulated ledger; bad masks stop the run and change nothing."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from alseg.datasets.synthetic import write_brats

SHAPE = (16, 16, 8)


@pytest.fixture(scope="module")
def train(alseg_train):
    """``alseg-train --output_dir <dir> <data> <the tiny run> <extra>`` (the session's ``alseg_train``)."""
    return alseg_train


def ledger(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]


def comparable(records: list[dict]) -> list[tuple]:
    return [(r["selected_ids"], r["num_labeled"], r["num_unlabeled"], r["annotation_cost"]) for r in records]


def annotate(round_dir: Path, *truths: Path) -> None:
    """The scripted annotator: each mask is the ground truth, sampled at the world coordinates of the item's image."""
    manifest = json.loads((round_dir / "manifest.json").read_text())
    (round_dir / "masks").mkdir(exist_ok=True)
    for item in manifest["items"]:
        image = nib.load(round_dir / item["image"])
        case = item["case_id"]
        truth = next(folder for folder in truths if (folder / case).is_dir())
        seg = nib.load(truth / case / f"{case}_seg.nii.gz")
        grid = np.indices(image.shape[:3]).reshape(3, -1)
        world = image.affine @ np.vstack([grid, np.ones(grid.shape[1])])
        voxels = np.rint(np.linalg.inv(seg.affine) @ world)[:3].astype(int)
        values = np.asanyarray(seg.dataobj)[tuple(voxels)].reshape(image.shape[:3])
        nib.save(nib.Nifti1Image(values.astype(np.uint8), image.affine), round_dir / item["mask"])


def run_with_annotator(train, run: Path, annotations: Path, truth, data: list[str], capsys, *extra: str) -> int:
    """Runs the command until the run ends, annotating every round it asks for; returns the rounds annotated."""
    command = ["--oracle", "folder", "--oracle.dir", str(annotations), *extra]  # after the tiny run's options
    for asked in range(10):
        capsys.readouterr()
        train(run, data, *command)
        last = capsys.readouterr().out.strip().splitlines()[-1]
        if not last.startswith("Round "):
            return asked
        assert "then run the same command again to continue" in last
        annotate(annotations / f"round_{asked + 1:03d}", *truth)
    raise AssertionError("the run never ended")


@pytest.fixture(scope="module")
def brats(tmp_path_factory) -> Path:
    return write_brats(tmp_path_factory.mktemp("data") / "brats", n_cases=6, shape=SHAPE, seed=2, tumour_fraction=1.0)


THREE_D = ["--data.dim", "3", "--model.dim", "3", "--data.patch_size", "[16, 16, 8]", "--model.roi_size", "[8, 8, 8]"]
ONE_BY_ONE = ["--data.initial_training_set_size", "1", "--active_learning.items_to_label", "1"]  # after the tiny run
PATCHES = [*THREE_D, "--data.annotation_unit", "patch", "--data.query_patch_size", "[8, 8, 4]"]


@pytest.mark.parametrize(
    ("items", "sizes"), [([], []), (THREE_D, ONE_BY_ONE), (PATCHES, [])], ids=["slices", "volumes", "patches"]
)
def test_a_scripted_annotator_gives_the_simulated_ledger(train, tmp_path, brats, capsys, items, sizes):
    data = ["--data.data_dir", str(brats), "--data.cache_dir", str(tmp_path / "cache"), *items]
    rounds = ["--active_learning.iterations", "2", *sizes]
    train(tmp_path / "simulated", data, *rounds)
    run = tmp_path / "folder"
    assert run_with_annotator(train, run, tmp_path / "ann", [brats], data, capsys, *rounds) == 2
    simulated, folder = ledger(tmp_path / "simulated"), ledger(run)
    assert comparable(folder) == comparable(simulated)
    for mine, theirs in zip(folder, simulated, strict=True):
        assert mine["metrics"] == pytest.approx(theirs["metrics"], rel=1e-4)
    assert not (run / "pending_round.pt").exists()
    before = (run / "rounds.jsonl").read_bytes()
    train(run, data, "--oracle", "folder", "--oracle.dir", str(tmp_path / "ann"), *rounds)  # resume: nothing
    assert (run / "rounds.jsonl").read_bytes() == before


@pytest.mark.parametrize("items", [[], PATCHES], ids=["slices", "patches"])
def test_items_overlay_their_case(train, tmp_path, brats, items):
    data = ["--data.data_dir", str(brats), "--data.cache_dir", str(tmp_path / "cache"), *items]
    train(tmp_path / "run", data, "--oracle", "folder", "--oracle.dir", str(tmp_path / "ann"))
    round_dir = tmp_path / "ann" / "round_001"
    entries = json.loads((round_dir / "manifest.json").read_text())["items"]
    assert {item["kind"] for item in entries} == {"patch" if items else "slice"}
    for item in entries:
        case = item["case_id"]
        flair = nib.load(brats / case / f"{case}_flair.nii.gz")
        image, prediction = nib.load(round_dir / item["image"]), nib.load(round_dir / item["prediction"])
        assert image.shape == (*item["shape"], 4) and prediction.shape == tuple(item["shape"])
        np.testing.assert_allclose(prediction.affine, image.affine)
        start = np.rint(np.linalg.inv(flair.affine) @ image.affine @ [0, 0, 0, 1])[:3].astype(int)
        if items:  # the manifest's box is the item's voxels in the case file
            assert item["box"] == {"start": start.tolist(), "size": item["shape"]}
        box = tuple(slice(a, a + n) for a, n in zip(start, item["shape"], strict=True))
        expected = np.asanyarray(flair.dataobj)[box]
        np.testing.assert_allclose(np.asanyarray(image.dataobj)[..., 0], expected, rtol=1e-6)
        assert set(np.unique(np.asanyarray(prediction.dataobj))) <= {0, 1, 2, 4}


def digest(run: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def pending(train, tmp_path_factory, brats) -> dict:
    """A run waiting for round 1, annotated correctly, kept aside to be restored before each bad input."""
    root = tmp_path_factory.mktemp("pending")
    data = ["--data.data_dir", str(brats), "--data.cache_dir", str(root / "cache")]
    command = ["--oracle", "folder", "--oracle.dir", str(root / "ann")]
    train(root / "run", data, *command)
    annotate(root / "ann" / "round_001", brats)
    for name in ("run", "ann"):
        shutil.copytree(root / name, root / f"{name}.good")
    return {"root": root, "data": data, "command": command}


def _first_mask(round_dir: Path) -> Path:
    return round_dir / json.loads((round_dir / "manifest.json").read_text())["items"][0]["mask"]


def _rewrite(path: Path, data=None, affine=None) -> None:
    image = nib.load(path)
    values = np.asanyarray(image.dataobj) if data is None else data
    nib.save(nib.Nifti1Image(values, image.affine if affine is None else affine), path)


def _shifted(path: Path) -> None:
    affine = nib.load(path).affine.copy()
    affine[:3, 3] += [0.0, 0.0, 1.5]  # the next slice's position
    _rewrite(path, affine=affine)


BAD = {
    "shape": (lambda m: _rewrite(m, np.zeros((16, 16, 2), np.uint8)), r"shape \(16, 16, 2\), expected \(16, 16, 1\)"),
    "affine": (_shifted, "its affine differs"),
    "values": (lambda m: _rewrite(m, np.full((16, 16, 1), 3, np.uint8)), r"label values \[3\]"),
    "missing": (lambda m: m.unlink(), "no mask yet for 1 of 2 items"),
    "extra": (lambda m: shutil.copy(m, m.with_name("stray.nii.gz")), "not a mask of an item of the manifest"),
    "manifest": (
        lambda m: (m.parents[1] / "manifest.json").write_text(
            (m.parents[1] / "manifest.json").read_text().replace('"version": 1', '"version": 2')
        ),
        "was edited since alseg wrote it",
    ),
}


@pytest.mark.parametrize("bad", sorted(BAD))
def test_bad_input_exits_2_naming_the_file_and_changes_nothing(train, pending, capsys, bad):
    root = pending["root"]
    for name in ("run", "ann"):
        shutil.rmtree(root / name, ignore_errors=True)
        shutil.copytree(root / f"{name}.good", root / name)
    mask = _first_mask(root / "ann" / "round_001")
    spoil, message = BAD[bad]
    spoil(mask)
    before = digest(root / "run")
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        train(root / "run", pending["data"], *pending["command"])
    error = capsys.readouterr().err
    assert stopped.value.code == 2
    assert error.startswith("alseg-train: error: ") and error.count("alseg-train: error:") == 1
    named = {"manifest": "round_001/manifest.json", "extra": "masks/stray.nii.gz"}.get(bad, f"masks/{mask.name}")
    assert named in error
    assert re.search(message, error), error
    assert digest(root / "run") == before and len(ledger(root / "run")) == 1


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory) -> dict[str, Path]:
    """Two more cases, ``BraTS2021_00100`` and ``BraTS2021_00101``, without seg files; their truth kept apart."""
    root = tmp_path_factory.mktemp("unlabelled")
    generated = write_brats(root / "generated", n_cases=2, shape=SHAPE, seed=7, tumour_fraction=1.0)
    for index in range(2):
        old, new = f"BraTS2021_{index:05d}", f"BraTS2021_{100 + index:05d}"
        for path in (generated / old).iterdir():
            target = root / ("truth" if path.name.endswith("_seg.nii.gz") else "images") / new
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / path.name.replace(old, new))
    return {"images": root / "images", "truth": root / "truth"}


def test_cases_without_ground_truth_need_a_person(train, tmp_path, brats, unlabelled, capsys):
    data = ["--data.data_dir", str(brats), "--data.cache_dir", str(tmp_path / "cache")]
    data += ["--data.unlabeled_images", str(unlabelled["images"])]
    everything = ["--strategy", "random", "--active_learning.items_to_label", "100"]
    with pytest.raises(SystemExit) as stopped:
        train(tmp_path / "simulated", data, *everything)
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and "simulated oracle cannot label" in error
    assert "'BraTS2021_00100', 'BraTS2021_00101']" in error and "have no ground truth" in error
    run = tmp_path / "folder"
    assert (
        run_with_annotator(train, run, tmp_path / "ann", [brats, unlabelled["truth"]], data, capsys, *everything) == 1
    )
    records = ledger(run)
    assert records[-1]["num_unlabeled"] == 0
    assert {i.split(":")[0] for i in records[-1]["selected_ids"]} >= {"BraTS2021_00100", "BraTS2021_00101"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([], "The folder oracle needs the folder of the annotation rounds: --oracle.dir DIR. Got none."),
        (["--oracle.dir", "ann", "--oracle.threshold", "1.5"], "'threshold' option of the folder oracle must be in"),
    ],
    ids=["no dir", "threshold"],
)
def test_bad_oracle_options_are_one_message_and_exit_2(tmp_path, capsys, options, message):
    from alseg.core import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--output_dir", str(tmp_path / "run"), "--oracle", "folder", *options])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1
