"""alseg-bench: grid, validation, extension, test metrics, failing and interrupted cells, resume, local and SLURM runs.

Here a killed benchmark is simulated by what a kill leaves behind (a ledger cut after a round, with a partial line, and
no summary); test_bench_kill.py kills a real benchmark process once. The cell lock is released by the OS on any exit.
"""

import contextlib
import fcntl
import functools
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from alseg.bench import cli
from alseg.bench.executors import run_local, slurm_executor
from alseg.bench.grid import expand, parse_grid
from alseg.bench.ledgers import load_runs
from alseg.bench.plots import plot_learning_curves
from alseg.bench.summary import summarise
from alseg.core.errors import ConfigError

RANDOM = "alseg.core.testing.SeededRandomStrategy"
BASE = {
    "model": {"class_path": "alseg.core.testing.TinySegmentationModel", "init_args": {"hidden_channels": 4}},
    "data": {
        "class_path": "alseg.core.testing.InMemoryDataModule",
        "init_args": {"num_cases": 4, "slices_per_case": 4, "image_size": 8, "initial_training_set_size": 2},
    },
    "strategy": {"class_path": RANDOM},  # replaced per cell by the grid
    "active_learning": {"iterations": 1, "items_to_label": 2, "logger": False},
    "trainer": {"accelerator": "cpu"},
}
AGAIN = {"name": "again", "class_path": RANDOM}
GRID = {"strategies": [{"name": "random", "class_path": RANDOM}, AGAIN], "seeds": 2}
CELLS = ["random/seed_0", "random/seed_1", "again/seed_0", "again/seed_1"]


def inputs(folder, base=None, grid=None):
    """Writes a base config and a grid file into ``folder``; returns their command-line arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text(yaml.safe_dump(base or BASE))
    (folder / "grid.yaml").write_text(yaml.safe_dump(grid or GRID))
    return ["--config", str(folder / "base.yaml"), "--grid", str(folder / "grid.yaml"), "--metric", "val/mean_dice"]


def run_bench(bench_dir, args, *extra):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.run([str(bench_dir), *args, *extra])
    return status, out.getvalue()


def ledger(bench_dir, cell):
    return (bench_dir / cell / "rounds.jsonl").read_text()


@pytest.fixture(scope="module")
def failed_once(tmp_path_factory):
    """A finished 2 × 2 grid of 2 rounds, re-run with cell again/seed_0 broken (a stray file in its run directory)
    and again/seed_1 deleted; returns the root folder, and the outputs and statuses of both runs."""
    root = tmp_path_factory.mktemp("bench")
    with contextlib.chdir(root):  # relative paths, so that copies of the folder resume
        args = inputs(Path("inputs"))
        first = run_bench(Path("bench"), args)
        shutil.rmtree("bench/again")
        Path("bench/again/seed_0").mkdir(parents=True)
        Path("bench/again/seed_0/notes.txt").write_text("not a run")
        return root, first, run_bench(Path("bench"), args)


@pytest.fixture
def copy(failed_once, tmp_path, monkeypatch):
    shutil.copytree(failed_once[0], tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    return Path("bench"), inputs(Path("inputs"))


def test_a_grid_runs_end_to_end_and_a_failing_cell_does_not_stop_it(failed_once):
    root, (status, out), (rerun_status, rerun_out) = failed_once
    assert status == 0 and "running 4 on 1 local process(es)" in out and "[4/4] again/seed_1: finished" in out
    assert rerun_status == 1 and "2 finished already; running 2" in rerun_out
    assert "[3/4] again/seed_0: FAILED: ConfigError: output_dir" in rerun_out and "holds no alseg run" in rerun_out
    assert "[4/4] again/seed_1: finished" in rerun_out and "3 of 4 cells finished; 1 failed." in rerun_out
    for cell in ("again/seed_1", "random/seed_0", "random/seed_1"):
        assert len(ledger(root / "bench", cell).splitlines()) == 2
    status_file = json.loads((root / "bench" / "status.json").read_text())
    assert "holds no alseg run" in status_file["again/seed_0"]["error"] and status_file["again/seed_1"]["error"] is None
    assert "again/seed_0: ConfigError: output_dir" in (root / "bench" / "report.md").read_text()
    assert "no alseg run" in (root / "bench" / "logs" / "again" / "seed_0.log").read_text()  # the traceback


def test_rerun_runs_only_the_failed_cell_and_reports_all(copy):
    bench_dir, args = copy
    before = {cell: ledger(bench_dir, cell) for cell in ("again/seed_1", "random/seed_0", "random/seed_1")}
    (bench_dir / "again" / "seed_0" / "notes.txt").unlink()
    status, out = run_bench(bench_dir, args)
    assert status == 0 and "3 finished already; running 1" in out and "[4/4] again/seed_0: finished" in out
    assert {cell: ledger(bench_dir, cell) for cell in before} == before
    selections = {
        cell: [json.loads(line)["selected_ids"] for line in ledger(bench_dir, cell).splitlines()] for cell in CELLS
    }
    assert selections["again/seed_0"] == selections["random/seed_0"]  # same strategy and seed under two labels
    assert selections["random/seed_0"] != selections["random/seed_1"]
    assert "| again | 2 |" in (bench_dir / "report.md").read_text()
    assert len((bench_dir / "results.csv").read_text().splitlines()) == 1 + 4 * 2
    figure = plot_learning_curves(summarise(load_runs(bench_dir), "val/mean_dice", "random"), "val/mean_dice", "random")
    assert len(figure.axes[0].get_lines()) == 2
    assert yaml.safe_load((bench_dir / "bench.yaml").read_text())["grid"]["seeds"] == [0, 1]
    assert "strategy" not in yaml.safe_load((bench_dir / "base_config.yaml").read_text())


def test_an_interrupted_cell_resumes_after_its_last_round(copy):
    bench_dir, args = copy
    full = ledger(bench_dir, "random/seed_0")
    partial = full.splitlines()[1][:40]  # killed after round 0, while appending round 1
    (bench_dir / "random/seed_0/rounds.jsonl").write_text(full.splitlines()[0] + "\n" + partial)
    (bench_dir / "random/seed_0/summary.json").unlink()
    status, out = run_bench(bench_dir, args, "--no-report")
    assert status == 1 and "[3/4] random/seed_0: finished" in out and "[4/4] again/seed_0: FAILED" in out
    resumed = ledger(bench_dir, "random/seed_0").splitlines()
    assert resumed[0] == full.splitlines()[0]  # round 0 was not run again
    assert [json.loads(line)["selected_ids"] for line in resumed] == [
        json.loads(line)["selected_ids"] for line in full.splitlines()
    ]


def files_of(bench_dir, cells):
    """Returns the identity (inode) and content of every file of ``cells`` (run directory and log)."""
    paths = [p for cell in cells for p in (bench_dir / cell).rglob("*")] + [bench_dir / f"logs/{c}.log" for c in cells]
    return {p: (p.stat().st_ino, p.read_bytes()) for p in paths if p.is_file()}


def test_added_seeds_and_strategies_run_only_the_new_cells_with_test_metrics(tmp_path):
    bench_dir, one = tmp_path / "bench", {"strategies": [{"name": "random", "class_path": RANDOM}], "seeds": 1}
    status, out = run_bench(bench_dir, inputs(tmp_path / "inputs", grid=one), "--no-report")
    assert status == 0 and "1 cells, 0 finished already" in out and "new since" not in out
    before, status_before = files_of(bench_dir, ["random/seed_0"]), (bench_dir / "status.json").read_text()
    status, out = run_bench(bench_dir, inputs(tmp_path / "inputs", grid=one), "--seeds", "2", "--no-report")
    assert status == 0 and "2 cells, 1 new since the last run, 1 finished already; running 1 on" in out
    assert "[2/2] random/seed_1: finished" in out and files_of(bench_dir, ["random/seed_0"]) == before
    before = files_of(bench_dir, ["random/seed_0", "random/seed_1"])
    two = {"strategies": [AGAIN, *one["strategies"]], "seeds": [1, 0]}
    status, out = run_bench(bench_dir, inputs(tmp_path / "inputs", grid=two), "--no-report")
    assert status == 0 and "4 cells, 2 new since the last run, 2 finished already; running 2 on" in out
    assert "[3/4] again/seed_1: finished" in out and "[4/4] again/seed_0: finished" in out  # the new grid's order
    assert files_of(bench_dir, ["random/seed_0", "random/seed_1"]) == before
    statuses = json.loads((bench_dir / "status.json").read_text())
    assert sorted(statuses) == sorted(CELLS) and statuses["random/seed_0"] == json.loads(status_before)["random/seed_0"]
    record = yaml.safe_load((bench_dir / "bench.yaml").read_text())
    assert record == {"base": BASE, "grid": parse_grid(two).as_dict()}  # the base as given; the extended grid
    assert yaml.safe_load((bench_dir / "base_config.yaml").read_text())["active_learning"]["test_each_round"] is True
    for cell in CELLS:
        rounds = [json.loads(line)["metrics"] for line in ledger(bench_dir, cell).splitlines()]
        assert len(rounds) == 2 and all({"test/loss", "test/mean_dice"} <= set(metrics) for metrics in rounds)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            {"base": {**BASE, "active_learning": {**BASE["active_learning"], "items_to_label": 3}}},
            "base.active_learning.items_to_label: 2 in the existing run, 3 now",
        ),
        (
            {"grid": {**GRID, "overrides": {"big": {"trainer.max_epochs": 2}}}},
            "overrides.big: None in the existing run, {'trainer.max_epochs': 2} now",
        ),
        (
            {"grid": {**GRID, "strategies": [{"name": "random", "class_path": RANDOM, "init_args": {"k": 1}}, AGAIN]}},
            "strategies.random.init_args.k: None in the existing run, 1 now",
        ),
        (
            {"grid": {**GRID, "strategies": [{"name": "random", "class_path": "random"}, AGAIN]}},
            f"strategies.random.class_path: '{RANDOM}' in the existing run, 'random' now",
        ),
        ({"grid": {**GRID, "strategies": GRID["strategies"][:1]}}, "strategy 'again' dropped"),
        ({"grid": {**GRID, "seeds": [1, 2]}}, "seed(s) [0] dropped"),
    ],
)
def test_changes_other_than_added_strategies_and_seeds_are_refused(copy, capsys, change, fragment):
    bench_dir = copy[0]
    files = {p: p.read_bytes() for p in bench_dir.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(bench_dir), *inputs(Path("changed"), **change)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "holds a benchmark of another base config or grid" in err and fragment in err, err
    assert "It takes only added strategies and seeds (the rest unchanged); use another folder" in err
    assert {p: p.read_bytes() for p in bench_dir.rglob("*") if p.is_file()} == files


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"grid": {**GRID, "strategies": ["entorpy"]}}, ["Unknown strategy 'entorpy'", "Available:"]),
        (
            {"grid": {**GRID, "strategies": [{"class_path": RANDOM, "init_args": {"k": 1}}]}},
            ["SeededRandomStrategy_k=1"],
        ),
        ({"base": {**BASE, "active_learning": {"itemz": 2}}}, ["Cell random/seed_0 does not validate", "itemz"]),
        ({"grid": {**GRID, "overrides": {"big": {"trainer.max_epochz": 2}}}}, ["random/big/seed_0", "max_epochz"]),
        ({"grid": {**GRID, "overrides": {"s": {"seed": 2}}}}, ["Override 's' sets ['seed']"]),
        ({"grid": {**GRID, "seeds": 0}}, ["'seeds' must be a count >= 1"]),
        ({"grid": {**GRID, "colour": 1}}, ["Unknown grid key(s) ['colour']"]),
    ],
)
def test_bad_input_exits_2_before_anything_starts(tmp_path, capsys, change, fragments):
    args = inputs(tmp_path / "inputs", **change)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(tmp_path / "bench"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("alseg-bench: error:") and "Traceback" not in err
    assert all(fragment in err for fragment in fragments), err
    assert not (tmp_path / "bench").exists()


def test_grid_labels_seeds_and_overrides(tmp_path):
    grid = parse_grid(
        {
            "strategies": [RANDOM, {"class_path": RANDOM, "name": "r2"}],
            "seeds": [3, 7],
            "overrides": {"wide": {"model.init_args.hidden_channels": 8, "active_learning.reset_weights": True}},
        }
    )
    cells = expand(grid, tmp_path)
    assert [cell.name for cell in cells] == [
        "SeededRandomStrategy/wide/seed_3",
        "SeededRandomStrategy/wide/seed_7",
        "r2/wide/seed_3",
        "r2/wide/seed_7",
    ]
    args = cells[1].train_args()
    assert args[:2] == ["--config", str(tmp_path / "base_config.yaml")]
    assert json.loads(args[args.index("--strategy") + 1]) == {"class_path": RANDOM}
    assert "--model.init_args.hidden_channels=8" in args and "--active_learning.reset_weights=true" in args
    assert args[-4:] == ["--seed", "7", "--output_dir", str(tmp_path / "SeededRandomStrategy/wide/seed_7")]
    assert parse_grid({"strategies": ["random"]}).seeds == (0, 1, 2)
    with pytest.raises(ConfigError, match="share the label"):
        parse_grid({"strategies": [RANDOM, RANDOM]})


def test_parallel_local_processes_give_the_same_runs_and_a_base_config_may_turn_tests_off(failed_once, tmp_path):
    root = failed_once[0]
    args = inputs(
        tmp_path / "inputs", base={**BASE, "active_learning": {**BASE["active_learning"], "test_each_round": False}}
    )
    status, out = run_bench(tmp_path / "bench", args, "--strategies", RANDOM, "--jobs", "2", "--no-report")
    assert status == 0 and "running 2 on 2 local process(es)" in out
    for seed in (0, 1):
        expected = [
            json.loads(line)["selected_ids"] for line in ledger(root / "bench", f"random/seed_{seed}").splitlines()
        ]
        produced = [
            json.loads(line) for line in ledger(tmp_path / "bench", f"SeededRandomStrategy/seed_{seed}").splitlines()
        ]
        assert [record["selected_ids"] for record in produced] == expected  # selections do not depend on testing
        assert len(produced) == 2 and not any(key.startswith("test/") for r in produced for key in r["metrics"])


def test_slurm_path_runs_the_cells_through_submitit_debug_executor(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "slurm_executor", functools.partial(slurm_executor, cluster="debug"))
    args = [*inputs(Path("inputs")), "--strategies", RANDOM, "--seeds", "1", "--executor", "slurm", "--no-report"]
    for bad, message in [("slurm_partitionz=gpu", "Invalid SLURM option"), ("gpu", "--slurm takes KEY=VALUE")]:
        with pytest.raises(SystemExit):
            cli.main(["bench", *args, "--slurm", bad])
        assert message in capsys.readouterr().err and not Path("bench").exists()
    status, out = run_bench(Path("bench"), args, "--slurm", "slurm_partition=gpu", "--slurm", "timeout_min=30")
    assert status == 0 and "Submitted 1 cells" in out and "[1/1] SeededRandomStrategy/seed_0: finished" in out
    assert len(ledger(Path("bench"), "SeededRandomStrategy/seed_0").splitlines()) == 2
    assert any(Path("bench/slurm").iterdir())  # submitit's pickles and logs
    assert cli._slurm_options(["gpus_per_node=1", "slurm_partition=gpu"]) == {
        "gpus_per_node": 1,
        "slurm_partition": "gpu",
    }


def test_cells_report_failures_and_a_cell_runs_in_one_process_at_a_time(tmp_path):
    cell_a, cell_b = expand(parse_grid({"strategies": [RANDOM], "seeds": 2}), tmp_path)  # no base_config.yaml
    cell_b.log_path.parent.mkdir(parents=True)
    with open(cell_b.log_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a process running cell_b would
        outcomes = run_local([cell_a, cell_b], 1, lambda outcome: None)
    assert "base_config.yaml" in outcomes[0].error and "Traceback" in cell_a.log_path.read_text()
    assert outcomes[1].error.startswith("another process is running this cell")
    assert not cell_b.output_dir.exists()


def test_the_report_compares_with_the_chosen_foreground_baseline(copy):
    bench_dir, args = copy
    run_bench(bench_dir, args, "--foreground-baseline", "again")
    report = (bench_dir / "report.md").read_text()
    assert "AUBC vs again" in report and "AUBC vs fg_random" not in report
