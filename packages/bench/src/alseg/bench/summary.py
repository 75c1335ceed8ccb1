"""Per-strategy statistics of a benchmark, computed from its runs.

Statistics: mean curve, final metric, AUBC, paired differences to the reference strategy, share of selected items
with foreground, seconds per round.

Runs are grouped by override. Within a group every statistic uses the first ``R`` rounds that every run of the group
completed, so that all strategies and seeds are compared over the same labelling budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

import numpy as np

from alseg.bench.curves import Curve, PairedComparison, aubc, mean_curve, mean_std, paired_comparison
from alseg.bench.ledgers import Run

PHASES = ("query", "train", "validate")


@dataclass(frozen=True)
class ArmSummary:
    """Statistics of one strategy in one group; ``(mean, std)`` pairs are over seeds (std NaN with one seed).

    Attributes:
        strategy: The strategy's label.
        seeds: The seeds, in the order of the per-seed arrays.
        curve: The mean curve over the group's common rounds.
        final: Metric after the last common round, ``[S]``.
        aubc: Normalised area under the budget curve (:func:`alseg.bench.curves.aubc`) per seed, ``[S]``.
        final_vs_reference: Paired comparison of ``final`` with the reference (seeds both ran), or None.
        aubc_vs_reference: Paired comparison of ``aubc`` with the reference, or None.
        foreground_share: Selected items with foreground / selected items per seed, ``[S]``, or None where the data
            module cannot tell (``selected_with_foreground`` null) or nothing was selected.
        seconds_per_round: Mean seconds per round of ``query`` (query rounds only), ``train``, ``validate`` and
            ``wall`` (the whole round), over rounds and seeds.
    """

    strategy: str
    seeds: tuple[int, ...]
    curve: Curve
    final: np.ndarray
    aubc: np.ndarray
    final_vs_reference: PairedComparison | None
    aubc_vs_reference: PairedComparison | None
    foreground_share: np.ndarray | None
    seconds_per_round: dict[str, float]


@dataclass(frozen=True)
class GroupSummary:
    """The strategies run under one override (None: the base config itself).

    Attributes:
        override: The override's name, or None.
        rounds: Number of common rounds used.
        pool_size: Labelled plus unlabelled items at round 0.
        arms: One summary per strategy: the reference first, then sorted by label.
        truncated: Runs that completed more rounds than were used.
    """

    override: str | None
    rounds: int
    pool_size: int
    arms: tuple[ArmSummary, ...]
    truncated: tuple[str, ...]


def summarise(runs: list[Run], metric: str, reference: str) -> list[GroupSummary]:
    """Returns one summary per override group of ``runs`` (sorted by override, strategy and seed)."""
    groups = []
    for override, members in groupby(runs, key=lambda run: run.override):
        group = list(members)
        rounds = min(len(run.records) for run in group)
        arms = {name: list(arm) for name, arm in groupby(group, key=lambda run: run.strategy)}
        arms = dict(sorted(arms.items(), key=lambda item: (item[0] != reference, item[0])))
        reference_runs = {run.seed: run for run in arms.get(reference, [])}
        summaries = tuple(
            _arm(arm, metric, rounds, {} if name == reference else reference_runs) for name, arm in arms.items()
        )
        truncated = tuple(run.name for run in group if len(run.records) > rounds)
        groups.append(GroupSummary(override, rounds, group[0].pool_size(), summaries, truncated))
    return groups


def _arm(runs: list[Run], metric: str, rounds: int, reference: dict[int, Run]) -> ArmSummary:
    labelled = np.stack([run.num_labeled(rounds) for run in runs])
    values = np.stack([run.metric(metric, rounds) for run in runs])
    areas = np.array([aubc(x, y) for x, y in zip(labelled, values, strict=True)])
    paired = [(i, reference[run.seed]) for i, run in enumerate(runs) if run.seed in reference]
    final_vs = aubc_vs = None
    if paired:
        index = [i for i, _ in paired]
        ref_values = np.stack([ref.metric(metric, rounds) for _, ref in paired])
        ref_areas = [aubc(ref.num_labeled(rounds), y) for (_, ref), y in zip(paired, ref_values, strict=True)]
        final_vs = paired_comparison(values[index, -1], ref_values[:, -1])
        aubc_vs = paired_comparison(areas[index], ref_areas)
    return ArmSummary(
        runs[0].strategy,
        tuple(run.seed for run in runs),
        mean_curve(labelled, values),
        values[:, -1],
        areas,
        final_vs,
        aubc_vs,
        _foreground_share(runs, rounds),
        _seconds_per_round(runs, rounds),
    )


def _foreground_share(runs: list[Run], rounds: int) -> np.ndarray | None:
    shares = []
    for run in runs:
        queried = run.records[1:rounds]
        counts = [record.selected_with_foreground for record in queried]
        selected = sum(len(record.selected_ids) for record in queried)
        if not selected or any(count is None for count in counts):
            return None
        shares.append(sum(counts) / selected)
    return np.array(shares)


def _seconds_per_round(runs: list[Run], rounds: int) -> dict[str, float]:
    records = [record for run in runs for record in run.records[:rounds]]
    seconds = {phase: [r.timing_s[phase] for r in records if phase != "query" or r.round > 0] for phase in PHASES}
    seconds["wall"] = [record.wall_time_s for record in records]
    return {phase: float(mean_std(values)[0]) if values else float("nan") for phase, values in seconds.items()}
