"""The text of ``alseg-report``: which split the numbers come from, the definitions, one section per override group.

The document is a list of blocks, rendered to Markdown (:func:`markdown`) and HTML (:func:`html`) alike.
"""

from __future__ import annotations

import html as html_escape
from pathlib import Path
from typing import Any

from alseg.bench.ledgers import AUTO_METRIC, TEST_METRIC
from alseg.bench.report_tables import (
    cost_table,
    penalty_table,
    pseudo_label_table,
    ranking_table,
    results_table,
    verdict_table,
)
from alseg.bench.statistics import ALPHA, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, MIN_SEEDS_FOR_TEST
from alseg.bench.summary import GroupSummary
from alseg.core.metrics import lower_is_better

#: A piece of the report: ("h1" | "h2" | "h3" | "p" | "strong", text), ("img", src, alt), ("list", *items),
#: ("table", header, rows).
Block = tuple[Any, ...]
_TEST = (
    f"a two-sided paired t-test over seeds (scipy.stats.ttest_rel, α = {ALPHA}; it needs at least "
    f"{MIN_SEEDS_FOR_TEST} paired seeds)"
)


def _aubc_definition(budget: str) -> str:
    """The AUBC's definition over the budget unit ``budget`` (``items`` or an annotation-cost unit)."""
    if budget == "items":
        return (
            "AUBC (normalised area under the budget curve): the trapezoid area under the metric plotted against the "
            "number of labelled items, from the first to the last round used, divided by the span of labelled items "
            "(n_last - n_first): the metric's average over the labelling budget, in its own units. AUBC is over "
            "labelled items in every table; it is not given over foreground voxels, because strategies spend "
            "different foreground budgets and an area normalised by each run's own span would average over "
            "different ranges."
        )
    return (
        "AUBC (normalised area under the budget curve): the trapezoid area under the metric plotted against the "
        f"annotation cost {budget!r} spent so far (alseg-report --budget), from the first to the last round used, "
        "divided by the span of that cost (b_last - b_first): the metric's average over the budget, in its own "
        f"units. AUBC is over {budget} in every table; a run that spends a different amount of it per round is "
        "normalised by its own span."
    )


_DEFINITIONS = (
    "Values are mean ± sample std over seeds. Δ: strategy minus reference on the same seed (mean ± std over paired "
    "seeds). W/T/L: seeds on which the strategy's AUBC is better / equal / worse than the reference's.",
    f"p: {_TEST} of the paired differences. When every seed differs by the same amount there is no variance: a "
    "nonzero constant difference counts as significant in its direction (p = 0, the t-test's limit), no difference "
    "as not significant (p = 1). Higher metric values count as better, lower ones for a loss or a distance (HD95): "
    "the metric line above says which.",
    "Penalty matrix (Ash et al., ICLR 2020, as in nnActive, Lüth et al. 2025): at every budget point (each query "
    "round after round 0, which is the same initial training for every strategy of a seed) the row strategy wins "
    f"over the column strategy when {_TEST} on the seeds both ran finds it significantly better; a cell is the "
    "fraction of budget points won (0 to 1), n/a where the pair has too few common seeds. Column sums: how often a "
    "strategy is beaten (lower is better).",
    f"Bootstrap ranking: {BOOTSTRAP_RESAMPLES} resamples of the seeds every strategy ran, drawn with replacement and "
    f"shared by all strategies (generator seed {BOOTSTRAP_SEED}); in each the strategies are ranked by mean AUBC "
    "(1 = best, ties share the average rank). Mean rank and the 2.5th-97.5th percentile interval over resamples.",
    f"Verdict: better / worse / no significant difference by {_TEST} of the AUBC, on the seeds both ran; next to it "
    "the fractions of budget points the strategy won and lost against the baseline in the penalty matrix.",
    "(oracle-informed): the strategy asked for ground truth of pool items before they were labelled (e.g. "
    "oracle_fg): a reference point, not a strategy one could deploy.",
    "Foreground share: selected items whose ground truth holds foreground, over all selected items. Seconds per "
    "round: mean over rounds and seeds (query: query rounds only).",
)


def _split_blocks(metric: str, requested: str) -> list[Block]:
    """Returns the report's statement of which split ``metric`` comes from (a warning for validation metrics)."""
    values = f"every metric value here ({metric}) is on the"
    split = metric.partition("/")[0]
    if split == "test":
        return [("p", f"Split: {values} held-out test split, never used for model selection.")]
    if split != "val":
        return [("strong", f"Split unknown: {metric} is neither a val/ nor a test/ metric.")]
    warning = (
        f"Warning: {values} validation split, which also selected each round's checkpoint: the values are optimistic."
    )
    if requested != AUTO_METRIC:
        return [("strong", warning)]
    hint = (
        f"Not every round of every run recorded {TEST_METRIC}; runs with alseg-train's "
        "active_learning.test_each_round: true record held-out test metrics."
    )
    return [("strong", warning), ("p", hint)]


def document(
    bench_dir: Path,
    groups: list[GroupSummary],
    metric: tuple[str, str],
    baselines: tuple[str, str],
    failures: dict[str, str],
) -> list[Block]:
    """Returns the report's blocks.

    Args:
        bench_dir: The benchmark folder (its name is the title).
        groups: The benchmark's groups.
        metric: The metric reported and the one requested (:data:`~alseg.bench.ledgers.AUTO_METRIC` or the same).
        baselines: The reference strategy and the foreground-aware baseline.
        failures: Cells that failed, name → error.
    """
    (reported, requested), (reference, foreground) = metric, baselines
    budget = groups[0].budget if groups else "items"
    blocks: list[Block] = [
        ("h1", f"Benchmark {bench_dir.name}"),
        *_split_blocks(reported, requested),
        (
            "p",
            f"Metric: {reported} ({_direction(reported)}). Reference strategy: {reference}. "
            f"Foreground-aware baseline: {foreground}.",
        ),
        ("img", "learning_curves.png", "learning curves"),
        ("img", "penalty_matrix.png", "pairwise penalty matrices"),
        ("h2", "Definitions"),
        ("list", "Final: the metric after the last round used.", _aubc_definition(budget), *_DEFINITIONS),
    ]
    for group in groups:
        blocks += _group_blocks(group, reported, baselines)
    if failures:
        blocks += [("h2", "Failed cells"), ("list", *(f"{name}: {error}" for name, error in failures.items()))]
    return blocks


def _direction(metric: str) -> str:
    return "lower is better" if lower_is_better(metric) else "higher is better"


def _group_blocks(group: GroupSummary, metric: str, baselines: tuple[str, str]) -> list[Block]:
    first, last = group.arms[0].curve.num_labeled[[0, -1]]
    notes = [
        f"Rounds 0-{group.rounds - 1} (the first {group.rounds} that every run here completed): {first:g} -> {last:g} "
        f"labelled items of {group.pool_size} ({first / group.pool_size:.1%} -> {last / group.pool_size:.1%}). "
        f"Learning curves against: {', '.join(group.cost_units)}. AUBC over: {group.budget}."
    ]
    if group.truncated:
        notes.append(f"Runs cut to these rounds: {', '.join(group.truncated)}.")
    names = [arm.strategy for arm in group.arms]
    present = [baseline for baseline in baselines if baseline in names]
    notes += [
        f"No strategy {baseline!r} here: no paired differences with it."
        for baseline in baselines
        if baseline not in names
    ]
    pairs = [arm.aubc_vs_reference.n for arm in group.arms if arm.aubc_vs_reference]
    if pairs and min(pairs) < MIN_SEEDS_FOR_TEST:
        notes.append(f"{min(pairs)} paired seed(s) (< {MIN_SEEDS_FOR_TEST}): too few for a test; see W/T/L.")
    blocks: list[Block] = [
        ("h2", f"Override {group.override}" if group.override else "Results"),
        *(("p", note) for note in notes),
        ("table", *results_table(group, metric)),
        ("table", *cost_table(group)),
    ]
    pseudo = pseudo_label_table(group)
    if pseudo is not None:
        blocks += [
            ("h3", "Pseudo-label quality"),
            ("p", "Mean Dice of each round's pseudo labels against the ground truth of the same items."),
            ("table", *pseudo),
        ]
    blocks.append(("h3", "Pairwise penalty matrix"))
    if group.penalty.budget_points:
        blocks += [
            ("p", f"{group.penalty.budget_points} budget point(s): rounds 1-{group.rounds - 1}. Row wins over column."),
            ("table", *penalty_table(group)),
        ]
    else:
        blocks.append(("p", "No query round in common: no budget point to compare."))
    blocks.append(("h3", "Bootstrap ranking"))
    if group.ranking is None:
        seeds = len(group.ranking_seeds)
        blocks.append(("p", f"{seeds} seed(s) common to all strategies: too few to resample, no ranking."))
    else:
        seeds = ", ".join(map(str, group.ranking_seeds))
        blocks += [("p", f"By AUBC over seeds {seeds}."), ("table", *ranking_table(group, group.ranking))]
    if present:
        blocks += [("h3", "Verdicts"), ("table", *verdict_table(group, present))]
    return blocks


def markdown(blocks: list[Block]) -> str:
    """Returns the blocks as Markdown."""
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
        elif kind == "strong":
            parts.append(f"**{content[0]}**")
        else:
            parts.append({"h1": "# ", "h2": "## ", "h3": "### ", "p": ""}[kind] + content[0])
    return "\n\n".join(parts) + "\n"


def html(blocks: list[Block]) -> str:
    """Returns the blocks as a standalone HTML page."""
    escape = html_escape.escape
    parts = []
    for kind, *content in blocks:
        if kind == "table":
            header, rows = content
            cells = [f"<tr>{''.join(f'<th>{escape(c)}</th>' for c in header)}</tr>"]
            cells += [f"<tr>{''.join(f'<td>{escape(c)}</td>' for c in row)}</tr>" for row in rows]
            parts.append(f"<table>{''.join(cells)}</table>")
        elif kind == "img":
            parts.append(f'<img src="{escape(content[0])}" alt="{escape(content[1])}">')
        elif kind == "list":
            parts.append(f"<ul>{''.join(f'<li>{escape(item)}</li>' for item in content)}</ul>")
        elif kind == "strong":
            parts.append(f"<p><strong>{escape(content[0])}</strong></p>")
        else:
            parts.append(f"<{kind}>{escape(content[0])}</{kind}>")
    style = "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><style>{style}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
