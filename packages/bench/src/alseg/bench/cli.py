"""``alseg-bench``: run a grid of active-learning experiments (strategies × overrides × seeds) and report on it.

Usage::

    alseg-bench BENCH_DIR --config base.yaml [--grid grid.yaml] [--strategies random entropy …] [--seeds 3]
                [--jobs N] [--executor local|slurm] [--slurm KEY=VALUE …] [--metric val/mean_dice]
                [--reference random] [--foreground-baseline fg_random] [--no-report] [--quiet]

The grid format is described in :mod:`alseg.bench.grid`; ``--strategies`` and ``--seeds`` (a count) replace the grid
file's keys. Every cell of the grid is one ``alseg-train`` run. The benchmark folder holds::

    bench.yaml                          the base config (as given) and the grid
    base_config.yaml                    the base config without strategy, seed and output_dir, read by every cell
    status.json                         the last outcome of every cell that ran (with the error of failed ones)
    <strategy>[/<override>]/seed_<s>/   the cells' run directories
    logs/<cell>.log                     each cell's output
    slurm/                              submitit's files (``--executor slurm``)
    report.md, report.html, learning_curves.png, results.csv   written by ``alseg-report`` at the end

Every cell tests its best checkpoint in every round (``test/...`` metrics in its ledger): ``base_config.yaml`` sets
``active_learning.test_each_round: true`` unless the base config sets ``test_each_round`` itself.

A cell whose ``summary.json`` covers all its ledger's rounds is finished and skipped; any other cell runs, and
``alseg-train`` resumes it after its last completed round, so a killed benchmark run again with the same command
continues where it stopped. A failing cell is reported at the end (exit status 1) and the rest of the grid runs.
A benchmark folder can be extended: a grid with more strategies or seeds (e.g. ``--seeds 6`` after ``--seeds 3``)
runs only the new cells, in the new grid's order, and is recorded in ``bench.yaml``. Any other change (the base
config, an override, a strategy's class path or ``init_args``, a dropped strategy or seed) is refused.
On a terminal a bar shows the cells ended of all, how many run and failed, with an ETA; otherwise one line per ended
cell. ``--quiet`` prints nothing but errors: bad input, and the failed cells (on standard error).
Bad input (an unknown strategy, a base config or override that does not validate, a folder of another benchmark)
stops everything before any cell starts, with one message and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit
import yaml

from alseg.bench import report
from alseg.bench.executors import CellOutcome, run_local, run_submitit, slurm_executor
from alseg.bench.grid import Cell, Grid, cell_base_config, expand, parse_grid, validate_cells
from alseg.bench.ledgers import STATUS_FILE
from alseg.core import progress
from alseg.core.errors import AlsegError, ConfigError
from alseg.core.run_directory import RunDirectory, atomic_write_text, config_differences

RECORD = "bench.yaml"


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser of ``alseg-bench``."""
    parser = argparse.ArgumentParser(prog="alseg-bench", description=__doc__.split("\n\n")[0].replace("``", ""))
    parser.add_argument("bench_dir", type=Path, help="The benchmark folder (created, or resumed).")
    parser.add_argument("--config", type=Path, required=True, help="The base alseg-train config file (YAML).")
    parser.add_argument("--grid", type=Path, help="A grid file (YAML): strategies, seeds, overrides.")
    parser.add_argument("--strategies", nargs="+", help="Strategies (short names or class paths); replace the grid's.")
    parser.add_argument("--seeds", type=int, help="Number of seeds (0 … N-1); replaces the grid's (default 3).")
    parser.add_argument("--jobs", type=int, default=1, help="Cells running at once (default 1: in this process).")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local", help="Where cells run.")
    parser.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="A submitit option, e.g. slurm_partition=gpu, timeout_min=600, gpus_per_node=1 (repeatable).",
    )
    parser.add_argument("--metric", default=report.DEFAULT_METRIC, help="The report's metric (default %(default)s).")
    parser.add_argument("--reference", default=report.DEFAULT_REFERENCE, help="The report's reference strategy.")
    parser.add_argument(
        "--foreground-baseline",
        default=report.DEFAULT_FOREGROUND_BASELINE,
        help="The report's foreground-aware baseline (default %(default)s).",
    )
    parser.add_argument("--no-report", action="store_true", help="Do not write the report at the end.")
    parser.add_argument("--quiet", action="store_true", help="Print nothing but errors (and failed cells).")
    parser.add_argument("--debug", action="store_true", help="Show tracebacks of errors.")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``alseg-bench``.

    Exit status: 0; 1 if a cell failed; 2 with one message on bad input; 130 when interrupted.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        status = run(args)
    except AlsegError as error:
        if "--debug" in args:
            raise
        print(f"alseg-bench: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("alseg-bench: interrupted; the same command continues where it stopped.", file=sys.stderr)
        sys.exit(130)
    sys.exit(status)


def run(argv: Sequence[str]) -> int:
    """Validates the grid, runs its unfinished cells, writes the report; returns 1 if a cell failed, else 0."""
    args = build_parser().parse_args(argv)
    with progress.using(progress.decide(quiet=args.quiet)):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    cells, new, executor = _prepare(args)
    pending = [cell for cell in cells if not RunDirectory(cell.output_dir).is_complete()]
    where = f"a SLURM job array ({args.jobs} at once)" if executor else f"{args.jobs} local process(es)"
    added = f", {new} new since the last run" if new else ""
    progress.say(f"Benchmark {args.bench_dir}: {len(cells)} cells{added}, {len(cells) - len(pending)} finished "
                 f"already; running {len(pending)} on {where}.")  # fmt: skip
    outcomes = []
    with _Progress(args.bench_dir, len(cells), len(pending), args.jobs, queued=executor is not None) as on_done:
        if pending:
            outcomes = run_submitit(executor, pending, on_done) if executor else run_local(pending, args.jobs, on_done)
    failed = [outcome for outcome in outcomes if outcome.error]
    progress.say(f"{len(cells) - len(failed)} of {len(cells)} cells finished; {len(failed)} failed.")
    for outcome in failed:
        _error(f"  {outcome.cell.name}: {outcome.error} (log: {outcome.cell.log_path})")
    if not args.no_report:
        try:
            paths = report.write_report(args.bench_dir, args.metric, args.reference, args.foreground_baseline)
        except AlsegError as error:
            raise AlsegError(f"The cells ran, but the report failed: {error}") from error
        progress.say("Report: " + ", ".join(str(path) for path in paths))
    return 1 if failed else 0


def _error(line: str) -> None:
    """A line about a failed cell: in the record on standard output, or on standard error when quiet."""
    if progress.mode() == "quiet":
        print(f"alseg-bench: {line.strip()}", file=sys.stderr, flush=True)
    else:
        progress.say(line)


def _prepare(args: argparse.Namespace) -> tuple[list[Cell], int, submitit.Executor | None]:
    """Checks everything, then records the benchmark in its folder.

    Returns:
        The cells, how many of them the folder's recorded grid lacks (0 in a new folder), and the SLURM executor.
    """
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be an integer >= 1. Got {args.jobs}.")
    grid = parse_grid(_grid_spec(args))
    base = _read_mapping(args.config, "Base config")
    recorded = _recorded_grid(args.bench_dir, base, grid)
    cells = expand(grid, args.bench_dir)
    old = {cell.name for cell in expand(recorded, args.bench_dir)} if recorded else set()
    new = sum(cell.name not in old for cell in cells) if recorded else 0
    executor = None
    if args.executor == "slurm":
        executor = slurm_executor(args.bench_dir / "slurm", _slurm_options(args.slurm), args.jobs)
    with tempfile.TemporaryDirectory() as tmp:
        draft = Path(tmp) / "base_config.yaml"
        draft.write_text(_base_config_text(base))
        validate_cells(cells, draft)
    atomic_write_text(args.bench_dir / RECORD, yaml.safe_dump({"base": base, "grid": grid.as_dict()}, sort_keys=False))
    atomic_write_text(cells[0].base_config, _base_config_text(base))
    return cells, new, executor


class _Progress:
    """Shows the benchmark's progress as cells end, and keeps ``status.json`` up to date.

    One line per ended cell (:func:`alseg.core.progress.say`); on a terminal also a bar of the cells ended of all,
    with an ETA from the cells that ended in this run, and how many run and failed. The running cells are those
    started and not ended: the executors keep ``jobs`` cells going while cells are left (under SLURM they may wait
    in the queue, so the bar says "queued or running").

    Args:
        bench_dir: The benchmark folder.
        total: Cells of the grid.
        pending: Cells to run now (the others finished in an earlier run).
        jobs: Cells running at once.
        queued: The cells are submitted to a scheduler, which may queue them.
    """

    def __init__(self, bench_dir: Path, total: int, pending: int, jobs: int, queued: bool = False) -> None:
        self.path, self.total, self.done = bench_dir / STATUS_FILE, total, total - pending
        self.status = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.jobs, self.left, self.failed = jobs, pending, 0
        self.running = "queued or running" if queued else "running"
        self.bar = progress.bar(total, "cells", unit="cell", initial=self.done, rate=False)
        self._show()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def __call__(self, outcome: CellOutcome) -> None:
        self.done += 1
        self.left -= 1
        self.failed += outcome.error is not None
        name = outcome.cell.name
        self.status[name] = {"error": outcome.error, "seconds": round(outcome.seconds, 3)}
        atomic_write_text(self.path, json.dumps(self.status, indent=2, sort_keys=True) + "\n")
        self._show()
        result = f"FAILED: {outcome.error}" if outcome.error else f"finished in {outcome.seconds:.1f} s"
        progress.say(f"[{self.done}/{self.total}] {name}: {result}")  # quiet: the failures are listed at the end

    def _show(self) -> None:
        """Draws the bar: cells ended (``n``), running and failed."""
        self.bar.set_postfix_str(f"{min(self.jobs, self.left)} {self.running}, {self.failed} failed", refresh=False)
        self.bar.update(self.done - self.bar.n)
        self.bar.refresh()


def _grid_spec(args: argparse.Namespace) -> dict[str, Any]:
    spec = _read_mapping(args.grid, "Grid file") if args.grid else {}
    if args.strategies:
        spec["strategies"] = args.strategies
    if args.seeds is not None:
        spec["seeds"] = args.seeds
    return spec


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"{what} {path} cannot be read: {error.strerror}.") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} {path} is not valid YAML: {error}") from error
    if not isinstance(content, dict):
        raise ConfigError(f"{what} {path} must hold a mapping. Got {type(content).__name__}.")
    return content


def _recorded_grid(bench_dir: Path, base: dict[str, Any], grid: Grid) -> Grid | None:
    """Returns the grid recorded in ``bench_dir`` (None if the folder is new or empty), which ``grid`` extends.

    Raises:
        ConfigError: The folder holds no benchmark, or one of another base config, or one that ``grid`` does not
            extend.
    """
    if bench_dir.exists() and not bench_dir.is_dir():
        raise ConfigError(f"Benchmark folder {bench_dir} exists and is not a directory.")
    if not bench_dir.exists() or not any(bench_dir.iterdir()):
        return None
    if not (bench_dir / RECORD).exists():
        raise ConfigError(f"Benchmark folder {bench_dir} is not empty and holds no benchmark (no {RECORD}).")
    record = yaml.safe_load((bench_dir / RECORD).read_text())
    recorded = parse_grid(record["grid"])
    problems = config_differences(record["base"], base, "base") + grid.extension_problems(recorded)
    if problems:
        raise ConfigError(
            f"Benchmark folder {bench_dir} holds a benchmark of another base config or grid "
            f"({'; '.join(problems[:5])}). It takes only added strategies and seeds (the rest unchanged); "
            "use another folder for any other change."
        )
    return recorded


def _base_config_text(base: dict[str, Any]) -> str:
    return yaml.safe_dump(cell_base_config(base), sort_keys=False)


def _slurm_options(items: list[str]) -> dict[str, Any]:
    options = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--slurm takes KEY=VALUE (e.g. slurm_partition=gpu). Got {item!r}.")
        options[key] = yaml.safe_load(value)
    return options


if __name__ == "__main__":
    main()
