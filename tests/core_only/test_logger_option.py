"""The logger option with alseg-core alone: CSV by default, nothing with false, clear errors before any write."""

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

from alseg.core import ConfigError, cli
from alseg.core.run_directory import config_differences
from alseg.core.tracking import TRACKER_MODULES, resolve_loggers

DOUBLES = [
    "--model",
    "alseg.core.testing.TinySegmentationModel",
    "--data",
    "alseg.core.testing.InMemoryDataModule",
    "--strategy",
    "alseg.core.testing.SeededRandomStrategy",
    "--trainer.accelerator",
    "cpu",
]


def test_the_default_writes_per_round_csv_logs_only(make_pipeline, tmp_path):
    make_pipeline(iterations=1).run()
    logs = tmp_path / "run" / "logs"
    # TensorBoard is no longer automatic when installed (it is in the workspace): only when asked for.
    assert sorted(p.name for p in logs.iterdir()) == ["csv"]
    assert sorted(p.name for p in (logs / "csv").iterdir()) == ["round_000", "round_001", "test"]
    assert (logs / "csv" / "round_001" / "metrics.csv").read_text().startswith("epoch")


def test_logger_false_writes_no_logs(make_pipeline, tmp_path):
    make_pipeline(iterations=1, logger=False).run()
    assert (tmp_path / "run" / "rounds.jsonl").exists() and not (tmp_path / "run" / "logs").exists()


def test_true_false_names_and_lists():
    assert resolve_loggers(True) == ("csv",) and resolve_loggers(False) == () and resolve_loggers([]) == ()
    assert resolve_loggers("csv") == ("csv",) and resolve_loggers(["csv", "csv"]) == ("csv",)


def test_an_unknown_logger_is_one_config_error_before_anything_is_written(make_pipeline, tmp_path):
    with pytest.raises(ConfigError) as error:
        make_pipeline(logger=["csv", "wandbb"])
    assert str(error.value) == (
        "Unknown logger 'wandbb' in the 'logger' option of the active_learning section. Available: csv, mlflow, "
        "tensorboard, wandb (a name or a list of them; true = csv, false = none)."
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["tensorboard", "wandb", "mlflow"])
def test_a_missing_tracker_package_names_the_extra(make_pipeline, tmp_path, monkeypatch, name):
    monkeypatch.setitem(sys.modules, name, None)  # as if not installed (it is not, with alseg-core alone)
    with pytest.raises(ConfigError, match=rf"needs the {name} package.*pip install 'alseg-core\[{name}\]'"):
        make_pipeline(logger=["csv", name])
    assert not (tmp_path / "run").exists()


def test_alseg_train_parses_a_name_a_list_and_false(tmp_path):
    def parsed(value):
        return cli.parse_args([*DOUBLES, "--active_learning.logger", value])[1].active_learning.logger

    assert parsed("tensorboard") == "tensorboard"
    assert parsed("[csv, mlflow]") == ["csv", "mlflow"]
    assert parsed("false") is False
    assert cli.parse_args(DOUBLES)[1].active_learning.logger == "csv"


def test_alseg_train_reports_an_unknown_logger_with_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*DOUBLES, "--output_dir", str(tmp_path / "run"), "--active_learning.logger", "nope"])
    assert exit_info.value.code == 2
    assert "Unknown logger 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_where_logs_go_may_change_on_resume():
    old = {"active_learning": {"logger": True, "tracking_uri": None, "epochs": 1}}
    new = {"active_learning": {"logger": ["csv", "mlflow"], "tracking_uri": "sqlite:///x.db", "epochs": 1}}
    assert config_differences(old, new) == []


def test_core_imports_tracker_packages_only_when_a_tracker_is_used():
    # Checked in the source, not in sys.modules: MONAI's own optional import loads mlflow whenever it is installed.
    spec = importlib.util.find_spec("alseg.core")
    sources = sorted(path for folder in spec.submodule_search_locations for path in Path(folder).rglob("*.py"))
    top_level = [
        f"{path.name}: {module}"
        for path in sources
        for module in module_level_imports(ast.parse(path.read_text()))
        if module.split(".")[0] in TRACKER_MODULES.values()
    ]
    assert top_level == []


def module_level_imports(node):
    """Yields the modules a source imports outside functions (also under ``if``/``try`` or in a class body)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            yield from (alias.name for alias in child.names)
        elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
            yield child.module
        elif not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from module_level_imports(child)
