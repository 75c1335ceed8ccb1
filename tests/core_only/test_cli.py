"""alseg-train: configuration, short names, resume, and one clear message with exit status 2 on bad input."""

import json
from pathlib import Path

import pytest
import yaml

from alseg.core import cli

DOUBLES = [
    "--model",
    "alseg.core.testing.TinySegmentationModel",
    "--data",
    "alseg.core.testing.InMemoryDataModule",
    "--strategy",
    "alseg.core.testing.SeededRandomStrategy",
    "--trainer.accelerator",
    "cpu",
    "--active_learning.items_to_label",
    "2",
    "--active_learning.epochs",
    "1",
]


def train(tmp_path, *extra, name="run"):
    return cli.main([*DOUBLES, "--output_dir", str(tmp_path / name), *extra])


def fails(capsys, tmp_path, *extra, name="run"):
    with pytest.raises(SystemExit) as exit_info:
        train(tmp_path, *extra, name=name)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_run_writes_config_ledger_and_summary(tmp_path, capsys):
    train(tmp_path, "--active_learning.iterations", "2", "--seed", "5")
    run = tmp_path / "run"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["seed"] == 5 and config["active_learning"]["items_to_label"] == 2
    assert config["data"]["init_args"]["num_cases"] == 6  # defaults are resolved into the file
    assert config["data"]["init_args"]["seed"] == 5  # an unset data seed follows the run's seed
    assert "debug" not in config and "config" not in config
    assert len((run / "rounds.jsonl").read_text().splitlines()) == 3
    assert json.loads((run / "summary.json").read_text())["rounds"] == 3
    assert f"Run directory: {run}" in capsys.readouterr().out


def test_config_file_and_dotted_overrides(tmp_path):
    config = tmp_path / "experiment.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"class_path": "alseg.core.testing.TinySegmentationModel", "init_args": {"dropout": 0.3}},
                "data": "alseg.core.testing.InMemoryDataModule",
                "strategy": "alseg.core.testing.SeededRandomStrategy",
                "active_learning": {"iterations": 1, "items_to_label": 5},
                "trainer": {"accelerator": "cpu"},
            }
        )
    )
    cli.main(["--config", str(config), "--active_learning.items_to_label", "3", "--output_dir", str(tmp_path / "r")])
    written = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert written["active_learning"]["items_to_label"] == 3
    assert written["model"]["init_args"]["dropout"] == 0.3
    records = (tmp_path / "r" / "rounds.jsonl").read_text().splitlines()
    assert len(json.loads(records[1])["selected_ids"]) == 3


def test_same_command_twice_resumes_without_new_rounds(tmp_path):
    train(tmp_path, "--active_learning.iterations", "1")
    first = (tmp_path / "run" / "rounds.jsonl").read_text()
    train(tmp_path, "--active_learning.iterations", "1")
    assert (tmp_path / "run" / "rounds.jsonl").read_text() == first


def test_changed_config_on_existing_run_is_refused_and_nothing_damaged(tmp_path, capsys):
    train(tmp_path, "--active_learning.iterations", "1")
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    err = fails(capsys, tmp_path, "--active_learning.iterations", "1", "--active_learning.epochs", "2")
    assert "different configuration" in err and "active_learning.epochs: 1 in the existing run, 2 now" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == before


def test_non_empty_directory_without_run_is_refused(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert "holds no alseg run" in fails(capsys, tmp_path)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--active_learning.items_to_label", "0"], ["'items_to_label'", ">= 1", "Got 0"]),
        (["--active_learning.items_to_label", "two"], ["active_learning.items_to_label", "two"]),
        (["--active_learning.itemz", "3"], ["--active_learning.itemz"]),
        (["--strategy", "entorpy"], ["Unknown strategy 'entorpy'", "Available:"]),
        (["--model", "no.such.Model"], ["model", "no.such.Model"]),
        (["--strategy", "alseg.core.testing.TinySegmentationModel"], ["strategy", "TinySegmentationModel"]),
        (["--trainer.max_epochs", "3"], ["--trainer.max_epochs"]),
    ],
)
def test_bad_input_exits_2_with_one_message(tmp_path, capsys, extra, fragments):
    err = fails(capsys, tmp_path, *extra)
    assert err.startswith("alseg-train: error:")
    for fragment in fragments:
        assert fragment in err
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(Exception, match="items_to_label"):
        train(tmp_path, "--active_learning.items_to_label", "0", "--debug")


def test_unknown_short_name_in_config_file(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("strategy: entorpy\n")
    with pytest.raises(SystemExit):
        cli.main(["--config", str(config), "--output_dir", str(tmp_path / "run")])
    assert "Unknown strategy 'entorpy'" in capsys.readouterr().err


def test_config_file_that_is_not_a_mapping(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("- just\n- a list\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--config", str(config), "--output_dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert f"Config file {config} must hold a mapping" in capsys.readouterr().err


def test_same_seed_same_run_for_a_plugin_that_builds_its_layers_in_init(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    plugin = ["--model", "eager_plugin.EagerModel", "--strategy", "eager_plugin.MaxProbabilityStrategy"]
    for name in ("a", "b"):
        train(tmp_path, *plugin, "--active_learning.iterations", "1", "--seed", "3", name=name)
    ledgers = [[json.loads(line) for line in (tmp_path / n / "rounds.jsonl").read_text().splitlines()] for n in "ab"]
    assert ledgers[0][0]["metrics"] == ledgers[1][0]["metrics"]  # same first weights, same round-0 losses
    assert [r["selected_ids"] for r in ledgers[0]] == [r["selected_ids"] for r in ledgers[1]]
