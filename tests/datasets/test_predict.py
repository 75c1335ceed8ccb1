"""alseg-predict: geometry of the written files, label values, 2D and 3D models, probability maps, bad input."""

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import apply_orientation, inv_ornt_aff

from alseg.core.errors import ConfigError
from alseg.datasets import predict
from alseg.datasets.brats_layout import discover_brats
from alseg.datasets.label_maps import LabelMapWriter
from alseg.datasets.labels import MSD_BRAIN_TUMOUR_REGIONS, brats_label_scheme, decathlon_label_scheme
from alseg.datasets.msd_layout import discover_decathlon, read_dataset_json
from alseg.datasets.nifti_output import PROBABILITY_DTYPE, SourceGeometry
from alseg.datasets.synthetic import write_brats, write_decathlon
from alseg.datasets.volumes import read_case

SHAPE = (16, 16, 8)
#: Voxel-axis permutations and flips (nibabel ``ornt`` arrays) applied to copies of a case.
ORIENTATIONS = {
    "flip-x": [[0, -1], [1, 1], [2, 1]],
    "permute": [[2, 1], [0, 1], [1, 1]],
    "permute-and-flip": [[1, -1], [2, 1], [0, -1]],
}


@pytest.fixture(scope="module")
def brats(tmp_path_factory) -> Path:
    return write_brats(tmp_path_factory.mktemp("data") / "brats", n_cases=6, shape=SHAPE, seed=1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, brats, alseg_train) -> dict[str, Path]:
    """Tiny runs on the synthetic BraTS cases: a 2D U-Net, and 3D U-Nets with sliding windows of 8 voxels that
    labelled volumes or boxes."""
    root = tmp_path_factory.mktemp("runs")
    data = ["--data.data_dir", str(brats), "--data.cache_dir", str(root / "cache")]
    alseg_train(root / "2d", data)
    three_d = [
        "--data.dim",
        "3",
        "--model.dim",
        "3",
        "--data.patch_size",
        "[16, 16, 8]",
        "--model.roi_size",
        "[8, 8, 8]",
    ]
    patches = [*three_d, "--data.annotation_unit", "patch", "--data.query_patch_size", "[8, 8, 4]"]
    three_d += ["--data.initial_training_set_size", "1", "--active_learning.items_to_label", "1"]
    alseg_train(root / "3d", data, *three_d)
    alseg_train(root / "patch", data, *patches)
    return {"2d": root / "2d", "3d": root / "3d", "patch": root / "patch"}


def run_predict(*argv: str) -> None:
    predict.main([str(arg) for arg in argv])


def reoriented_copy(source: Path, target: Path, ornt: list[list[int]]) -> None:
    """Writes ``source`` with its voxel axes permuted/flipped and the affine describing the same world geometry."""
    image = nib.load(source)
    data = np.asanyarray(image.dataobj)
    affine = image.affine @ inv_ornt_aff(np.array(ornt), data.shape)  # takes the original shape
    nib.save(nib.Nifti1Image(apply_orientation(data, np.array(ornt)), affine, image.header), target)


def copy_case(source_dir: Path, target_root: Path, case_id: str, ornt: list[list[int]] | None = None) -> Path:
    """Copies a BraTS case folder under another case id, optionally reoriented."""
    target = target_root / case_id
    target.mkdir(parents=True)
    for path in source_dir.iterdir():
        name = path.name.replace(source_dir.name, case_id)
        if ornt is None:
            shutil.copy(path, target / name)
        else:
            reoriented_copy(path, target / name, ornt)
    return target


def canonical(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.as_closest_canonical(nib.load(path))
    return image.get_fdata(), image.affine


def assert_same_geometry(output: Path, source: Path) -> None:
    written, original = nib.load(output), nib.load(source)
    assert written.shape[:3] == original.shape[:3]
    np.testing.assert_allclose(written.affine, original.affine)
    for code in ("qform_code", "sform_code"):
        assert written.header[code] == original.header[code]
    np.testing.assert_allclose(written.header.get_sform(), original.header.get_sform())
    np.testing.assert_allclose(written.header.get_qform(), original.header.get_qform(), atol=1e-5)


# --------------------------------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_permuted_and_flipped_copies_predict_the_same_world(tmp_path, brats, runs, dim):
    images = tmp_path / "images"
    source = brats / "BraTS2021_00003"
    copy_case(source, images, "BraTS2021_00100")
    for index, ornt in enumerate(ORIENTATIONS.values()):
        copy_case(source, images, f"BraTS2021_0010{index + 1}", ornt)
    out = tmp_path / "out"
    run_predict(runs[dim], "--images", images, "--output", out, "--probabilities")

    reference = {kind: canonical(out / kind / "BraTS2021_00100.nii.gz") for kind in ("", "probabilities")}
    assert reference["probabilities"][0].std() > 0  # the comparison below is not between constant maps
    for index in range(1, len(ORIENTATIONS) + 1):
        case_id = f"BraTS2021_0010{index}"
        flair = images / case_id / f"{case_id}_flair.nii.gz"
        assert canonical(flair)[0].shape == SHAPE  # the copy describes the same world
        for kind in ("", "probabilities"):
            output = out / kind / f"{case_id}.nii.gz"
            assert_same_geometry(output, flair)
            data, affine = canonical(output)
            np.testing.assert_allclose(affine, reference[kind][1])
            np.testing.assert_allclose(data, reference[kind][0], atol=1e-6)


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_a_label_map_is_written_back_in_its_file_s_voxel_order(tmp_path, brats, name):
    case_dir = copy_case(brats / "BraTS2021_00003", tmp_path / "cases", "BraTS2021_00100", ORIENTATIONS[name])
    case = discover_brats(case_dir.parent)[0]
    scheme = brats_label_scheme("2021")
    regions = read_case(case, scheme).label  # TC, WT, ET in the reader's RAS frame
    geometry = SourceGeometry.of_file(case.images["flair"].path, case.case_id)
    assert geometry.reoriented_shape == regions.shape[1:]
    labels = geometry.to_file_order(LabelMapWriter(scheme)(regions.astype(np.float32)))
    output = tmp_path / "labels.nii.gz"
    nib.save(geometry.like_source(labels, "test"), output)
    np.testing.assert_array_equal(nib.load(output).get_fdata(), nib.load(case.label).get_fdata())
    assert_same_geometry(output, case.images["flair"].path)


# ------------------------------------------------------------------------------------------------------ label values
SCHEMES = {
    "brats2021-regions": (brats_label_scheme("2021"), (0, 1, 2, 4)),
    "brats2023-regions": (brats_label_scheme("2023"), (0, 1, 2, 3)),
    "brats2021-classes": (brats_label_scheme("2021", "multiclass"), (0, 1, 2, 4)),
    "brats2023-classes": (brats_label_scheme("2023", "multiclass"), (0, 1, 2, 3)),
    "msd-regions": (
        decathlon_label_scheme({0: "bg", 1: "ed", 2: "net", 3: "et"}, MSD_BRAIN_TUMOUR_REGIONS),
        (0, 1, 2, 3),
    ),
    "msd-classes": (decathlon_label_scheme({0: "bg", 1: "liver", 2: "tumour"}), (0, 1, 2)),
    "msd-sparse-classes": (decathlon_label_scheme({0: "bg", 3: "a", 7: "b"}), (0, 3, 7)),
}


def as_outputs(target: np.ndarray, multilabel: bool, classes: int) -> np.ndarray:
    """Probabilities that reproduce a target: the regions themselves, or one-hot classes."""
    return target.astype(np.float32) if multilabel else np.eye(classes, dtype=np.float32)[target].transpose(3, 0, 1, 2)


@pytest.mark.parametrize("name", list(SCHEMES))
def test_labels_round_trip_through_the_targets(name):
    scheme, values = SCHEMES[name]
    label = np.random.default_rng(0).choice(values, size=(6, 5, 4))
    target = scheme.convert(label, "case", "seg.nii.gz")
    written = LabelMapWriter(scheme)(as_outputs(target, scheme.multilabel, len(scheme.class_names)))
    np.testing.assert_array_equal(written, label)
    assert written.dtype == np.uint8


@pytest.mark.parametrize("name", ["brats2021-regions", "msd-classes"])
def test_binary_mode_writes_0_and_1(name):
    values = SCHEMES[name][1]
    binary = (
        brats_label_scheme("2021", "binary")
        if name.startswith("brats")
        else decathlon_label_scheme({0: "bg", 1: "liver", 2: "tumour"}, mode="binary")
    )
    label = np.random.default_rng(1).choice(values, size=(5, 5, 3))
    written = LabelMapWriter(binary)(as_outputs(binary.convert(label, "case", "seg"), False, 2))
    np.testing.assert_array_equal(written, (label != 0).astype(np.uint8))


@pytest.mark.parametrize(
    ("release", "on", "expected"),
    [
        ("2021", "TC WT ET", 4),
        ("2021", "ET", 4),  # ET implies TC and WT
        ("2021", "TC", 1),
        ("2021", "WT", 2),
        ("2021", "TC WT", 1),
        ("2021", "", 0),
        ("2023", "ET", 3),
        ("2023", "WT ET", 3),
    ],
)
def test_the_most_specific_brats_region_wins(release, on, expected):
    probabilities = np.array([[0.9 if name in on.split() else 0.1] for name in ("TC", "WT", "ET")])
    assert LabelMapWriter(brats_label_scheme(release))(probabilities).tolist() == [expected]


def test_regions_that_do_not_determine_a_label_are_refused():
    scheme = decathlon_label_scheme({0: "bg", 1: "a", 2: "b"}, {"AB": [1, 2]})
    with pytest.raises(ConfigError, match=r"Region 'AB' \(label values \[1, 2\]\) owns the label values \[1, 2\]"):
        LabelMapWriter(scheme)


def test_a_model_that_reproduces_the_ground_truth_writes_the_label_files(tmp_path, brats, runs, monkeypatch):
    scheme = brats_label_scheme("2021")
    truth = {case.case_id: read_case(case, scheme).label.astype(np.float32) for case in discover_brats(brats)}
    monkeypatch.setattr(predict, "predict_volume", lambda model, image, case_id, *args: truth[case_id])
    run_predict(runs["2d"], "--split", "all", "--output", tmp_path / "out")
    for case_id in truth:
        written = nib.load(tmp_path / "out" / f"{case_id}.nii.gz")
        original = nib.load(brats / case_id / f"{case_id}_seg.nii.gz")
        np.testing.assert_array_equal(np.asanyarray(written.dataobj), np.asanyarray(original.dataobj))
        assert written.get_data_dtype() == np.uint8


# ---------------------------------------------------------------------------------------------- models and outputs
@pytest.mark.parametrize("dim", ["2d", "3d", "patch"])
def test_2d_and_3d_models_write_volumes_of_the_input_shape(tmp_path, brats, runs, dim, capsys):
    run_predict(runs[dim], "--output", tmp_path / "out", "--probabilities")
    written = sorted((tmp_path / "out").glob("*.nii.gz"))
    assert written and "Wrote" in capsys.readouterr().out
    for path in written:
        case_id = path.name.removesuffix(".nii.gz")
        flair = brats / case_id / f"{case_id}_flair.nii.gz"
        assert_same_geometry(path, flair)
        assert set(np.unique(np.asanyarray(nib.load(path).dataobj))) <= {0, 1, 2, 4}

        probabilities = nib.load(tmp_path / "out" / "probabilities" / path.name)
        assert_same_geometry(tmp_path / "out" / "probabilities" / path.name, flair)
        assert probabilities.shape == (*SHAPE, 3)  # TC, WT, ET on the last axis
        assert probabilities.get_data_dtype() == PROBABILITY_DTYPE  # 16 bits: NIfTI has no float16
        values = probabilities.get_fdata()
        assert values.min() >= 0.0 and values.max() <= 1.0 and values.std() > 0


def test_the_chosen_round_s_checkpoint_runs(tmp_path, runs, capsys):
    run_predict(runs["2d"], "--round", "0", "--output", tmp_path / "out")
    assert "with round 0 (checkpoints/round_000/best.ckpt)" in capsys.readouterr().out


def test_a_decathlon_run_predicts_a_folder_of_4d_images(tmp_path, alseg_train):
    task = write_decathlon(tmp_path / "msd", n_cases=6, shape=SHAPE, seed=2, n_test=2)
    data = ["--data", "decathlon", "--data.data_dir", str(task), "--data.cache_dir", str(tmp_path / "cache")]
    alseg_train(tmp_path / "run", data, "--active_learning.iterations", "0")
    run_predict(tmp_path / "run", "--images", task / "imagesTs", "--output", tmp_path / "out")
    for image in discover_decathlon(task, "test"):
        source = image.images["FLAIR"].path
        written = tmp_path / "out" / source.name
        assert_same_geometry(written, source)
        assert nib.load(written).ndim == 3
        assert set(np.unique(np.asanyarray(nib.load(written).dataobj))) <= set(read_dataset_json(task).labels)


# ------------------------------------------------------------------------------------------------------- bad input
def expect_error(capsys, argv: list, message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_predict(*argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("alseg-predict: error: ") and "Traceback" not in err
    assert message in err, err


def test_not_a_run_directory(tmp_path, capsys):
    expect_error(capsys, [tmp_path, "--output", tmp_path / "out"], f"{tmp_path} is not an alseg run directory")
    expect_error(capsys, [tmp_path / "nothing", "--output", tmp_path / "out"], "does not exist")
    assert not (tmp_path / "out").exists()


def test_no_completed_round(tmp_path, runs, capsys):
    (tmp_path / "run").mkdir()
    shutil.copy(runs["2d"] / "config.yaml", tmp_path / "run")
    expect_error(capsys, [tmp_path / "run", "--output", tmp_path / "out"], "has no completed round")
    assert not (tmp_path / "out").exists()


def test_unknown_round(tmp_path, runs, capsys):
    expect_error(capsys, [runs["2d"], "--round", "7", "--output", tmp_path / "out"], "Unknown round 7 of run")
    assert not (tmp_path / "out").exists()


def test_missing_checkpoint(tmp_path, runs, capsys):
    shutil.copytree(runs["2d"], tmp_path / "run")
    (tmp_path / "run" / "checkpoints" / "round_001" / "best.ckpt").unlink()
    expect_error(capsys, [tmp_path / "run", "--output", tmp_path / "out"], "round_001/best.ckpt of round 1")
    assert not (tmp_path / "out").exists()


def test_an_images_folder_without_nifti(tmp_path, runs, capsys):
    (tmp_path / "images" / "BraTS2021_00100").mkdir(parents=True)
    (tmp_path / "images" / "BraTS2021_00100" / "notes.txt").write_text("no images")
    argv = [runs["2d"], "--images", tmp_path / "images", "--output", tmp_path / "out"]
    expect_error(capsys, argv, f"The --images folder {tmp_path / 'images'} holds no NIfTI images")
    assert not (tmp_path / "out").exists()


def test_a_case_missing_a_modality(tmp_path, brats, runs, capsys):
    case = copy_case(brats / "BraTS2021_00003", tmp_path / "images", "BraTS2021_00100")
    (case / "BraTS2021_00100_t2.nii.gz").unlink()
    argv = [runs["2d"], "--images", tmp_path / "images", "--output", tmp_path / "out"]
    expect_error(capsys, argv, "Case BraTS2021_00100: missing modality file BraTS2021_00100_t2.nii.gz")
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_cannot_be_written(tmp_path, runs, capsys):
    (tmp_path / "file").write_text("")
    expect_error(capsys, [runs["2d"], "--output", tmp_path / "file"], "exists and is not a directory")
    output = tmp_path / "file" / "out"
    expect_error(capsys, [runs["2d"], "--output", output], f"Cannot write the --output folder {output}")


def test_split_and_images_exclude_each_other(tmp_path, runs, capsys):
    argv = [runs["2d"], "--split", "val", "--images", tmp_path, "--output", tmp_path / "out"]
    expect_error(capsys, argv, "argument --images: not allowed with argument --split")


def test_an_unknown_device(tmp_path, runs, capsys):
    expect_error(capsys, [runs["2d"], "--device", "abacus", "--output", tmp_path / "out"], "The --device 'abacus'")
    assert not (tmp_path / "out").exists()


def test_data_that_changed_since_training(tmp_path, runs, capsys):
    shutil.copytree(runs["2d"], tmp_path / "run")
    (tmp_path / "run" / "run.json").write_text('{"data_fingerprint": "0123456789abcdef"}')
    expect_error(capsys, [tmp_path / "run", "--output", tmp_path / "out"], "changed since it was trained")
    assert not (tmp_path / "out").exists()
