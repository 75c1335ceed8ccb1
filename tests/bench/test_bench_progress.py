"""Progress output of alseg-bench: a bar of cells done, running and failed with an ETA on a terminal, one line per
ended cell without one, only the failures with --quiet."""

import contextlib
import io
import re
import sys
from pathlib import Path

import pytest
import yaml

from alseg.bench import cli
from alseg.bench.executors import CellOutcome
from alseg.bench.grid import Cell
from alseg.core import progress

RANDOM = "alseg.core.testing.SeededRandomStrategy"
BASE = {
    "model": {"class_path": "alseg.core.testing.TinySegmentationModel", "init_args": {"hidden_channels": 4}},
    "data": {
        "class_path": "alseg.core.testing.InMemoryDataModule",
        "init_args": {"num_cases": 4, "slices_per_case": 4, "image_size": 8, "initial_training_set_size": 2},
    },
    "active_learning": {"iterations": 0, "items_to_label": 2, "logger": False},
    "trainer": {"accelerator": "cpu"},
}
#: Two cells; the first fails as it starts (more initial labels than training slices), the second trains one round.
GRID = {
    "strategies": [{"name": "random", "class_path": RANDOM}],
    "seeds": 1,
    "overrides": {"broken": {"data.initial_training_set_size": 1000}, "fine": {"data.initial_training_set_size": 2}},
}
FAILURE = "ConfigError: initial_training_set_size must be between 0 and 8. Got 1000."
BAR_MARKS = ("\r", "█", "ETA", "\x1b")


def benchmark(folder: Path) -> list[str]:
    """Writes the inputs of a benchmark whose first cell fails into ``folder``; returns the alseg-bench arguments."""
    (folder / "base.yaml").write_text(yaml.safe_dump(BASE))
    (folder / "grid.yaml").write_text(yaml.safe_dump(GRID))
    inputs = ["--config", str(folder / "base.yaml"), "--grid", str(folder / "grid.yaml")]
    return [str(folder / "bench"), *inputs, "--metric", "val/mean_dice", "--no-report"]


def test_on_a_terminal_a_bar_shows_cells_done_running_failed_and_an_eta(tmp_path, run_in_terminal):
    command = "from alseg.bench.cli import main; main()"
    status, output = run_in_terminal([sys.executable, "-c", command, *benchmark(tmp_path)], cwd=tmp_path)
    assert status == 1, output[-2000:]
    assert re.search(r"cells:   0%\|[^|]*\| 0/2 \[\d\d:\d\d, ETA \?, 1 running, 0 failed\]", output)
    # after the failed cell: an ETA from the one cell that ended, the next cell running
    assert re.search(r"cells:  50%\|█+[^|]*\| 1/2 \[\d\d:\d\d, ETA \d\d:\d\d, 1 running, 1 failed\]", output)
    assert re.search(r"cells: 100%\|█+\| 2/2 \[\d\d:\d\d, ETA 00:00, 0 running, 1 failed\]", output)
    lines = re.split(r"[\r\n]+", output)
    assert any(line.startswith(f"[1/2] random/broken/seed_0: FAILED: {FAILURE}") for line in lines)
    assert any(re.fullmatch(r"\[2/2\] random/fine/seed_0: finished in [\d.]+ s", line) for line in lines)
    # the cell ran in this process with its output in its log, which is no terminal: its round line, no bar
    log = (tmp_path / "bench" / "logs" / "random" / "fine" / "seed_0.log").read_text()
    assert re.search(r"^round 0: 2 labelled", log, re.MULTILINE) and not [m for m in BAR_MARKS if m in log]


def test_without_a_terminal_one_line_per_ended_cell_and_no_bar(tmp_path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.run(benchmark(tmp_path))
    lines = out.getvalue().splitlines()
    assert status == 1 and len(lines) == 5, out.getvalue()
    assert lines[0] == f"Benchmark {tmp_path / 'bench'}: 2 cells, 0 finished already; running 2 on 1 local process(es)."
    assert lines[1] == f"[1/2] random/broken/seed_0: FAILED: {FAILURE}"
    assert re.fullmatch(r"\[2/2\] random/fine/seed_0: finished in [\d.]+ s", lines[2])
    assert lines[3] == "1 of 2 cells finished; 1 failed."
    assert lines[4] == f"  random/broken/seed_0: {FAILURE} (log: {tmp_path / 'bench/logs/random/broken/seed_0.log'})"
    assert not [mark for mark in BAR_MARKS if mark in out.getvalue()]


def test_quiet_prints_only_the_failed_cells_on_standard_error(tmp_path, capsys):
    assert cli.run([*benchmark(tmp_path), "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"alseg-bench: random/broken/seed_0: {FAILURE} (log: ")
    assert (tmp_path / "bench" / "random" / "fine" / "seed_0" / "summary.json").exists()


def test_quiet_still_reports_bad_input_with_exit_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(
            [str(tmp_path / "bench"), "--config", str(tmp_path / "missing.yaml"), "--strategies", RANDOM, "--quiet"]
        )
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert err.startswith("alseg-bench: error: Base config") and "cannot be read" in err


def outcome(name: str, error: str | None = None) -> CellOutcome:
    return CellOutcome(Cell(Path("b"), name, None, 0, ()), error, 1.0)


def test_running_cells_are_the_jobs_kept_busy_while_cells_are_left(tmp_path, capsys):
    with progress.using("tty"), cli._Progress(tmp_path, total=5, pending=4, jobs=3) as on_done:
        on_done(outcome("a"))
        on_done(outcome("b", "RuntimeError: boom"))
        on_done(outcome("c"))
    states = re.findall(r"\| (\d)/5 \[[^]]*, (\d) running, (\d) failed\]", capsys.readouterr().out)
    assert ("1", "3", "0") in states and ("2", "3", "0") in states  # 3 of the 4 left at once, then 3 of 3
    assert ("3", "2", "1") in states and ("4", "1", "1") in states  # then what is left
    assert ("3", "3", "0") not in states  # never a count with the last state's postfix
    with progress.using("tty"), cli._Progress(tmp_path, total=1, pending=1, jobs=1, queued=True):
        pass
    assert "1 queued or running, 0 failed" in capsys.readouterr().out
