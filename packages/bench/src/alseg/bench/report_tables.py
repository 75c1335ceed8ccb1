"""The tables of one override group in ``alseg-report``: results, cost, penalty matrix, ranking and verdicts.

Each function returns the group's rows as strings; :mod:`alseg.bench.document` puts them into the report.
"""

from __future__ import annotations

import math

import numpy as np

from alseg.bench.curves import PairedComparison
from alseg.bench.statistics import MIN_SEEDS_FOR_TEST, Ranking
from alseg.bench.summary import ArmSummary, GroupSummary, paired

#: A table: (header, rows).
Table = tuple[list[str], list[list[str]]]
_VERDICTS = {1: "better", -1: "worse", 0: "no significant difference"}


def results_table(group: GroupSummary, metric: str) -> Table:
    """Returns final metric, AUBC and the paired differences to the reference of every strategy."""
    header = [
        "strategy",
        "seeds",
        f"final {metric}",
        f"AUBC ({group.budget})",
        "Δ final",
        "Δ AUBC",
        "W/T/L (AUBC)",
        "p (AUBC)",
    ]
    rows = [
        [arm.label, str(len(arm.seeds)), _pm(arm.final), _pm(arm.aubc), _delta(arm.final_vs_reference), *_vs(arm)]
        for arm in group.arms
    ]
    return header, rows


def cost_table(group: GroupSummary) -> Table:
    """Returns the foreground share of the selections and the seconds per round of every strategy."""
    phases = [
        p for p in group.arms[0].seconds_per_round if any(math.isfinite(a.seconds_per_round[p]) for a in group.arms)
    ]
    rows = [
        [arm.label, _pm(arm.foreground_share), *(f"{arm.seconds_per_round[phase]:.2f}" for phase in phases)]
        for arm in group.arms
    ]
    return ["strategy", "foreground share", *(f"{phase} s/round" for phase in phases)], rows


def pseudo_label_table(group: GroupSummary) -> Table | None:
    """Returns the mean pseudo-label Dice of every query round of the strategies that gave pseudo labels, or None."""
    arms = [arm for arm in group.arms if arm.pseudo_label_dice is not None]
    if not arms:
        return None
    rows = [[arm.label, *("-" if math.isnan(d) else f"{d:.3f}" for d in arm.pseudo_label_dice)] for arm in arms]
    return ["strategy", *(f"round {r}" for r in range(1, group.rounds))], rows


def penalty_table(group: GroupSummary) -> Table:
    """Returns the penalty matrix: row strategy wins over column strategy, with the column sums below."""
    penalty, labels = group.penalty, [arm.label for arm in group.arms]
    rows = [
        [label, *(_fraction(penalty.wins[i, j], penalty.tested[i, j], i == j) for j in range(len(labels)))]
        for i, label in enumerate(labels)
    ]
    rows.append(["beaten (column sum)", *(f"{total:.2f}" for total in penalty.beaten)])
    return ["wins / loses to", *labels], rows


def ranking_table(group: GroupSummary, ranking: Ranking) -> Table:
    """Returns the group's bootstrap ranking by AUBC, best mean rank first."""
    order = np.argsort(ranking.mean, kind="stable")
    interval = f"{ranking.confidence:.0%} interval"
    rows = [
        [group.arms[k].label, f"{ranking.mean[k]:.2f}", f"[{ranking.low[k]:g}, {ranking.high[k]:g}]"] for k in order
    ]
    return ["strategy", "mean rank", interval], rows


def verdict_table(group: GroupSummary, baselines: list[str]) -> Table:
    """Returns every strategy's verdict against each baseline (strategies of the group), with penalty fractions."""
    names = [arm.strategy for arm in group.arms]
    header, columns = ["strategy"], []
    for baseline in baselines:
        header += [f"AUBC vs {baseline}", f"budget points won vs {baseline}", f"lost vs {baseline}"]
        columns.append(names.index(baseline))
    rows = []
    for i, arm in enumerate(group.arms):
        row = [arm.label]
        for b in columns:
            if b == i:
                row += ["-", "-", "-"]
                continue
            tested = group.penalty.tested[i, b]
            won, lost = group.penalty.wins[i, b], group.penalty.wins[b, i]
            row += [
                _verdict(paired(arm, group.arms[b], "aubc", group.higher_is_better)),
                _fraction(won, tested),
                _fraction(lost, tested),
            ]
        rows.append(row)
    return header, rows


def _vs(arm: ArmSummary) -> list[str]:
    comparison = arm.aubc_vs_reference
    return [_delta(comparison), _wtl(comparison), _p(comparison)]


def _verdict(comparison: PairedComparison | None) -> str:
    if comparison is None or comparison.p_value is None:
        n = comparison.n if comparison else 0
        return f"no test ({n} common seed{'s' * (n != 1)}, < {MIN_SEEDS_FOR_TEST})"
    return f"{_VERDICTS[comparison.direction]} (p {comparison.p_value:.3g})"


def _fraction(value: float, tested: bool, diagonal: bool = False) -> str:
    if diagonal:
        return "-"
    return f"{value:.2f}" if tested else "n/a"


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
