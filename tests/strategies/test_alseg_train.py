"""Every registered strategy runs end to end through alseg-train with the reference U-Net and BraTS module; the ledger
records which ones read the ground truth and how many picks ties decided."""

import pytest
import yaml

from alseg.core import cli
from alseg.core.registry import registered
from alseg.datasets.synthetic import write_brats


@pytest.fixture(scope="module")
def brats_dir(tmp_path_factory):
    return write_brats(tmp_path_factory.mktemp("data") / "brats", n_cases=6, shape=(16, 16, 8), seed=1)


@pytest.fixture
def train(alseg_train):
    def run(tmp_path, brats_dir, *extra):
        data = ["--data.data_dir", str(brats_dir), "--data.cache_dir", str(tmp_path / "cache")]
        return alseg_train(tmp_path / "run", data, *extra)

    return run


def test_default_experiment_is_unet_brats_entropy(tmp_path, brats_dir, train):
    records = train(tmp_path, brats_dir)
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["model"]["class_path"] == "alseg.models.unet.UNet"
    assert config["data"]["class_path"] == "alseg.datasets.brats.BraTSDataModule"
    assert config["strategy"]["class_path"] == "alseg.strategies.entropy.EntropyStrategy"
    assert [len(r["selected_ids"]) for r in records] == [0, 2]
    assert "val/mean_dice" in records[-1]["metrics"] and "val/dice_WT" in records[-1]["metrics"]


#: Strategies whose items are 2D slices (blocks of adjacent slices).
SLICE_ONLY = {"interpolation"}
#: Oracle-informed baselines: they read the ground truth of pool items.
ORACLE = {"oracle_fg", "fg_aware_random"}


@pytest.mark.parametrize(
    ("strategy", "dim"),
    [(s, d) for s in sorted(registered("strategy")) for d in (2, 3) if d == 2 or s not in SLICE_ONLY],
)
def test_strategy_end_to_end(tmp_path, brats_dir, train, strategy, dim):
    extra = ["--data.dim", str(dim), "--model.dim", str(dim)]
    if dim == 3:
        extra += ["--data.patch_size", "[16, 16, 8]", "--data.initial_training_set_size", "1"]
        extra += ["--active_learning.items_to_label", "1"]
    records = train(tmp_path, brats_dir, "--strategy", strategy, *extra)
    selected = records[-1]["selected_ids"]
    assert len(selected) == (1 if dim == 3 else 2)
    assert all((":" in i) == (dim == 2) for i in selected)  # slice ids in 2D, volume ids in 3D
    assert (records[-1]["ground_truth_revealed"] > 0) == (strategy in ORACLE)  # only the oracle baselines read labels
    options = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["strategy"].get("init_args", {})
    top_k_ranked = "aggregation" in options and options["power"] is None  # score-based, not power sampling
    assert ("tied_picks" in records[-1]["strategy_notes"]) == top_k_ranked


@pytest.mark.parametrize("name", ["power_entropy", "power_bald"])
def test_power_short_names_sample_by_power(name):
    _, cfg = cli.parse_args(["--strategy", name])
    assert cfg.strategy.init_args.power == 1.0


def test_a_bad_strategy_option_is_one_message_and_status_2(tmp_path, brats_dir, train, capsys):
    with pytest.raises(SystemExit) as exit_:
        train(tmp_path, brats_dir, "--strategy", "entropy", "--strategy.aggregation", "median")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("alseg-train: error: Unknown aggregation 'median'") and "Traceback" not in err


@pytest.mark.parametrize("strategy", sorted(SLICE_ONLY))
def test_a_slice_strategy_on_volumes_is_one_message(tmp_path, brats_dir, train, strategy, capsys):
    with pytest.raises(SystemExit) as exit_:
        train(
            tmp_path,
            brats_dir,
            "--strategy",
            strategy,
            "--data.dim",
            "3",
            "--model.dim",
            "3",
            "--data.patch_size",
            "[16, 16, 8]",
            "--data.initial_training_set_size",
            "1",
        )
    assert exit_.value.code == 2
    assert "is not a slice" in capsys.readouterr().err
