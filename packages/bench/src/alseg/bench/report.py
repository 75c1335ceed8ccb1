"""``alseg-report``: learning curves, a summary and per-round results of a benchmark folder.

Usage::

    alseg-report BENCH_DIR [--metric val/mean_dice] [--reference random]

Reads the ledgers ``BENCH_DIR/<strategy>[/<override>]/seed_<s>/rounds.jsonl`` and writes into ``BENCH_DIR``:
``learning_curves.png``, ``report.md`` and ``report.html`` (the same content) and ``results.csv`` (one row per
strategy, override, seed and round). The statistics are those of :mod:`alseg.bench.summary`; the report states
their definitions.
"""

from __future__ import annotations

import argparse
import csv
import html
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alseg.bench.curves import MIN_SEEDS_FOR_TEST, PairedComparison
from alseg.bench.ledgers import check_metric, load_runs, read_failures, result_rows
from alseg.bench.plots import plot_learning_curves
from alseg.bench.summary import ArmSummary, GroupSummary, summarise
from alseg.core.errors import AlsegError, ConfigError
from alseg.core.run_directory import atomic_write_text

DEFAULT_METRIC = "val/mean_dice"
DEFAULT_REFERENCE = "random"
_DEFINITIONS = (
    "Final: the metric after the last round used. AUBC (normalised area under the budget curve): the trapezoid area "
    "under the metric plotted against the number of labelled items, from the first to the last round used, divided "
    "by the span of labelled items (n_last - n_first) - the metric's average over the labelling budget, in its own "
    "units. Values are mean ± sample std over seeds. Δ: strategy minus reference on the same seed (mean ± std over "
    "paired seeds). W/T/L: seeds on which the strategy's AUBC is higher / equal / lower than the reference's. p: "
    f"two-sided Wilcoxon signed-rank test of the paired AUBC differences, run from {MIN_SEEDS_FOR_TEST} paired seeds "
    "on (with n seeds no p-value below 2/2^n is possible). Foreground share: selected items whose ground truth holds "
    "foreground, over all selected items. Seconds per round: mean over rounds and seeds (query: query rounds only)."
)
#: A piece of the report: ("h1" | "h2" | "p", text), ("img", src, alt), ("list", *items), ("table", header, rows).
Block = tuple[Any, ...]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``alseg-report``; exits with status 2 and one message on bad input."""
    parser = argparse.ArgumentParser(prog="alseg-report", description=__doc__.split("\n\n")[0].replace("``", ""))
    parser.add_argument("bench_dir", type=Path, help="The benchmark folder.")
    parser.add_argument("--metric", default=DEFAULT_METRIC, help="The ledger metric to report (default %(default)s).")
    parser.add_argument("--reference", default=DEFAULT_REFERENCE, help="The reference strategy (default %(default)s).")
    args = parser.parse_args(argv)
    try:
        paths = write_report(args.bench_dir, args.metric, args.reference)
    except AlsegError as error:
        print(f"alseg-report: error: {error}", file=sys.stderr)
        sys.exit(2)
    print("Report: " + ", ".join(str(path) for path in paths))


def write_report(bench_dir: Path, metric: str = DEFAULT_METRIC, reference: str = DEFAULT_REFERENCE) -> list[Path]:
    """Writes the learning curves, ``report.md``, ``report.html`` and ``results.csv``; returns their paths.

    Raises:
        ConfigError: The folder holds no completed round, or ``metric`` is not in every round.
    """
    runs = load_runs(bench_dir)
    if not runs:
        raise ConfigError(f"{bench_dir} holds no run with a completed round (<strategy>/seed_<s>/rounds.jsonl).")
    try:
        check_metric(runs, metric)
    except ConfigError as error:
        raise ConfigError(f"{error} Choose one with --metric.") from error
    groups = summarise(runs, metric, reference)
    paths = [bench_dir / name for name in ("learning_curves.png", "report.md", "report.html", "results.csv")]
    plot_learning_curves(groups, metric, reference).savefig(paths[0], dpi=120)
    blocks = _document(bench_dir, groups, metric, reference, read_failures(bench_dir))
    atomic_write_text(paths[1], _markdown(blocks))
    atomic_write_text(paths[2], _html(blocks))
    rows = result_rows(runs)
    with open(paths[3], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return paths


def _document(
    bench_dir: Path, groups: list[GroupSummary], metric: str, reference: str, failures: dict[str, str]
) -> list[Block]:
    blocks: list[Block] = [
        ("h1", f"Benchmark {bench_dir.name}"),
        ("p", f"Metric: {metric}. Reference strategy: {reference}."),
        ("img", "learning_curves.png", "learning curves"),
        ("p", _DEFINITIONS),
    ]
    for group in groups:
        blocks += _group_blocks(group, metric, reference)
    if failures:
        blocks += [("h2", "Failed cells"), ("list", *(f"{name}: {error}" for name, error in failures.items()))]
    return blocks


def _group_blocks(group: GroupSummary, metric: str, reference: str) -> list[Block]:
    first, last = group.arms[0].curve.num_labeled[[0, -1]]
    notes = [
        f"Rounds 0-{group.rounds - 1} (the first {group.rounds} that every run here completed): {first:g} -> {last:g} "
        f"labelled items of {group.pool_size} ({first / group.pool_size:.1%} -> {last / group.pool_size:.1%})."
    ]
    if group.truncated:
        notes.append(f"Runs cut to these rounds: {', '.join(group.truncated)}.")
    pairs = [arm.aubc_vs_reference.n for arm in group.arms if arm.aubc_vs_reference]
    if all(arm.strategy != reference for arm in group.arms):
        notes.append(f"No strategy {reference!r} here: no paired differences.")
    elif pairs and min(pairs) < MIN_SEEDS_FOR_TEST:
        notes.append(f"{min(pairs)} paired seed(s) (< {MIN_SEEDS_FOR_TEST}): too few for a test; see W/T/L.")
    quality = [
        [arm.strategy, str(len(arm.seeds)), _pm(arm.final), _pm(arm.aubc), _delta(arm.final_vs_reference), *_vs(arm)]
        for arm in group.arms
    ]
    cost = [
        [arm.strategy, _pm(arm.foreground_share), *(f"{seconds:.2f}" for seconds in arm.seconds_per_round.values())]
        for arm in group.arms
    ]
    header = ["strategy", "seeds", f"final {metric}", "AUBC", "Δ final", "Δ AUBC", "W/T/L (AUBC)", "p (AUBC)"]
    return [
        ("h2", f"Override {group.override}" if group.override else "Results"),
        *(("p", note) for note in notes),
        ("table", header, quality),
        ("table", ["strategy", "foreground share", *(f"{k} s/round" for k in group.arms[0].seconds_per_round)], cost),
    ]


def _vs(arm: ArmSummary) -> list[str]:
    comparison = arm.aubc_vs_reference
    return [_delta(comparison), _wtl(comparison), _p(comparison)]


def _pm(values: np.ndarray | None) -> str:
    if values is None:
        return "n/a"
    return f"{values.mean():.4f}" + (f" ± {values.std(ddof=1):.4f}" if values.size > 1 else "")


def _delta(comparison: PairedComparison | None) -> str:
    if comparison is None:
        return "-"
    return f"{comparison.mean:+.4f}" + ("" if math.isnan(comparison.std) else f" ± {comparison.std:.4f}")


def _wtl(comparison: PairedComparison | None) -> str:
    return "-" if comparison is None else f"{comparison.wins}/{comparison.ties}/{comparison.losses}"


def _p(comparison: PairedComparison | None) -> str:
    if comparison is None:
        return "-"
    return "n/a" if comparison.p_value is None else f"{comparison.p_value:.3g}"


def _markdown(blocks: list[Block]) -> str:
    parts = []
    for kind, *content in blocks:
        if kind == "table":
            header, rows = content
            lines = [header, ["---"] * len(header), *rows]
            parts.append(
                "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines)
            )
        elif kind == "img":
            parts.append(f"![{content[1]}]({content[0]})")
        elif kind == "list":
            parts.append("\n".join(f"- {item}" for item in content))
        else:
            parts.append({"h1": "# ", "h2": "## ", "p": ""}[kind] + content[0])
    return "\n\n".join(parts) + "\n"


def _html(blocks: list[Block]) -> str:
    parts = []
    for kind, *content in blocks:
        if kind == "table":
            header, rows = content
            cells = [f"<tr>{''.join(f'<th>{html.escape(c)}</th>' for c in header)}</tr>"]
            cells += [f"<tr>{''.join(f'<td>{html.escape(c)}</td>' for c in row)}</tr>" for row in rows]
            parts.append(f"<table>{''.join(cells)}</table>")
        elif kind == "img":
            parts.append(f'<img src="{html.escape(content[0])}" alt="{html.escape(content[1])}">')
        elif kind == "list":
            parts.append(f"<ul>{''.join(f'<li>{html.escape(item)}</li>' for item in content)}</ul>")
        else:
            parts.append(f"<{kind}>{html.escape(content[0])}</{kind}>")
    style = "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><style>{style}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
