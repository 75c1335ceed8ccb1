"""``alseg-report``: learning curves, statistics and per-round results of a benchmark folder.

Usage::

    alseg-report BENCH_DIR [--metric auto] [--reference random] [--foreground-baseline fg_random]

Reads the ledgers ``BENCH_DIR/<strategy>[/<override>]/seed_<s>/rounds.jsonl`` and writes into ``BENCH_DIR``:
``learning_curves.png`` (against every annotation-cost unit), ``penalty_matrix.png``, ``report.md`` and
``report.html`` (the same content) and ``results.csv`` (one row per strategy, override, seed and round). The metric
``auto`` is ``test/mean_dice`` (held out) where every round of every run recorded it, else ``val/mean_dice``
(optimistic: it also chose the checkpoints); the report says which. The statistics are those of
:mod:`alseg.bench.summary` and :mod:`alseg.bench.statistics`; the report states their definitions.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from alseg.bench.document import document, html, markdown
from alseg.bench.ledgers import AUTO_METRIC, check_metric, load_runs, read_failures, resolve_metric, result_rows
from alseg.bench.plots import plot_learning_curves, plot_penalty_matrices
from alseg.bench.summary import summarise
from alseg.core.errors import AlsegError, ConfigError
from alseg.core.run_directory import atomic_write_text

#: ``auto``: ``test/mean_dice`` where every round of every run recorded it, else ``val/mean_dice``.
DEFAULT_METRIC = AUTO_METRIC
DEFAULT_REFERENCE = "random"
DEFAULT_FOREGROUND_BASELINE = "fg_random"
FILES = ("learning_curves.png", "penalty_matrix.png", "report.md", "report.html", "results.csv")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``alseg-report``; exits with status 2 and one message on bad input."""
    parser = argparse.ArgumentParser(prog="alseg-report", description=__doc__.split("\n\n")[0].replace("``", ""))
    parser.add_argument("bench_dir", type=Path, help="The benchmark folder.")
    parser.add_argument(
        "--metric", default=DEFAULT_METRIC, help="The ledger metric to report (default %(default)s: test, else val)."
    )
    parser.add_argument("--reference", default=DEFAULT_REFERENCE, help="The reference strategy (default %(default)s).")
    parser.add_argument(
        "--foreground-baseline",
        default=DEFAULT_FOREGROUND_BASELINE,
        help="The foreground-aware baseline of the verdicts (default %(default)s).",
    )
    parser.add_argument(
        "--budget",
        default="items",
        help="The annotation-cost unit of the AUBC's x axis: items (default), slices, voxels, new_voxels, "
        "labelled_fraction, ... (any unit every ledger records).",
    )
    args = parser.parse_args(argv)
    try:
        paths = write_report(args.bench_dir, args.metric, args.reference, args.foreground_baseline, args.budget)
    except AlsegError as error:
        print(f"alseg-report: error: {error}", file=sys.stderr)
        sys.exit(2)
    print("Report: " + ", ".join(str(path) for path in paths))


def write_report(
    bench_dir: Path,
    metric: str = DEFAULT_METRIC,
    reference: str = DEFAULT_REFERENCE,
    foreground_baseline: str = DEFAULT_FOREGROUND_BASELINE,
    budget: str = "items",
) -> list[Path]:
    """Writes the figures, ``report.md``, ``report.html`` and ``results.csv`` (:data:`FILES`); returns their paths.

    Raises:
        ConfigError: The folder holds no completed round, or the metric (resolved, see
            :func:`~alseg.bench.ledgers.resolve_metric`) is not in every round.
    """
    runs = load_runs(bench_dir)
    if not runs:
        raise ConfigError(f"{bench_dir} holds no run with a completed round (<strategy>/seed_<s>/rounds.jsonl).")
    reported = resolve_metric(runs, metric)
    try:
        check_metric(runs, reported)
    except ConfigError as error:
        raise ConfigError(f"{error} Choose one with --metric.") from error
    groups = summarise(runs, reported, reference, budget)
    paths = [bench_dir / name for name in FILES]
    plot_learning_curves(groups, reported, reference).savefig(paths[0], dpi=120)
    plot_penalty_matrices(groups).savefig(paths[1], dpi=120)
    baselines = (reference, foreground_baseline)
    blocks = document(bench_dir, groups, (reported, metric), baselines, read_failures(bench_dir))
    atomic_write_text(paths[2], markdown(blocks))
    atomic_write_text(paths[3], html(blocks))
    rows = result_rows(runs)
    with open(paths[4], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return paths
