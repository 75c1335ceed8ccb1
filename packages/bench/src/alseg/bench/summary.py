"""Per-strategy statistics of a benchmark, computed from its runs.

Statistics: mean curve and mean annotation cost, final metric, AUBC, paired differences to the reference strategy,
share of selected items with foreground, seconds per round; per group the pairwise penalty matrix and the bootstrap
ranking of :mod:`alseg.bench.statistics`.

Runs are grouped by override. Within a group every statistic uses the first ``R`` rounds that every run of the group
completed, so that all strategies and seeds are compared over the same labelling budget.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import groupby
from typing import Literal

import numpy as np

from alseg.bench.curves import Curve, PairedComparison, aubc, mean_curve, mean_std, paired_comparison
from alseg.bench.ledgers import COST_UNITS, Run
from alseg.bench.statistics import PenaltyMatrix, Ranking, bootstrap_ranking, penalty_matrix
from alseg.core.errors import ConfigError
from alseg.core.metrics import lower_is_better
from alseg.core.round_record import RoundRecord

PHASES = ("query", "train", "validate", "test")
#: Fewest seeds common to all strategies for a bootstrap ranking (with one, every resample is the same).
MIN_SEEDS_FOR_RANKING = 2


@dataclass(frozen=True)
class ArmSummary:
    """Statistics of one strategy in one group; ``(mean, std)`` pairs are over seeds (std NaN with one seed).

    Attributes:
        strategy: The strategy's label.
        oracle_informed: Whether a run asked for ground truth of pool items (``ground_truth_revealed > 0``).
        seeds: The seeds, in the order of the per-seed arrays.
        values: The metric after each common round, ``[S, R]``.
        curve: The mean curve over the group's common rounds.
        cost: Mean cumulative annotation cost over seeds after each round, ``[R]``, per unit of the group's
            ``cost_units`` (``items``: the labelled items, as in ``curve``).
        final: Metric after the last common round, ``[S]``.
        aubc: Normalised area under the budget curve (:func:`alseg.bench.curves.aubc`) per seed, ``[S]``.
        final_vs_reference: Paired comparison of ``final`` with the reference (seeds both ran), or None.
        aubc_vs_reference: Paired comparison of ``aubc`` with the reference, or None.
        foreground_share: Selected items with foreground / selected items per seed, ``[S]``, or None where the data
            module cannot tell (``selected_with_foreground`` null) or nothing was selected.
        seconds_per_round: Mean seconds per round of ``query`` (query rounds only), ``train``, ``validate``,
            ``test`` (rounds that tested their checkpoint; NaN if none did) and ``wall`` (the whole round), over rounds
            and seeds.
        pseudo_label_dice: Mean Dice of each query round's pseudo labels against the ground truth of the same items,
            over its pseudo labels of all seeds, ``[R - 1]`` (NaN for a round without any), or None if no round
            recorded one.
    """

    strategy: str
    oracle_informed: bool
    seeds: tuple[int, ...]
    values: np.ndarray
    curve: Curve
    cost: dict[str, np.ndarray]
    final: np.ndarray
    aubc: np.ndarray
    final_vs_reference: PairedComparison | None
    aubc_vs_reference: PairedComparison | None
    foreground_share: np.ndarray | None
    seconds_per_round: dict[str, float]
    pseudo_label_dice: np.ndarray | None = None

    @property
    def label(self) -> str:
        """Returns the strategy's name for tables and legends, marked ``(oracle-informed)`` where it is."""
        return f"{self.strategy} (oracle-informed)" if self.oracle_informed else self.strategy


@dataclass(frozen=True)
class GroupSummary:
    """The strategies run under one override (None: the base config itself).

    Attributes:
        override: The override's name, or None.
        rounds: Number of common rounds used.
        pool_size: Labelled plus unlabelled items at round 0.
        arms: One summary per strategy: the reference first, then sorted by label.
        truncated: Runs that completed more rounds than were used.
        cost_units: Annotation-cost units every run of the group recorded, ``items`` first; a unit that is a constant
            multiple of ``items`` in every run (slices of 2D slice items, their voxels) is left out: same curve.
        penalty: The pairwise penalty matrix of the arms (in the order of ``arms``) over the query rounds.
        budget: The annotation-cost unit the AUBC integrates over (``items`` by default; e.g. ``new_voxels`` or
            ``labelled_fraction`` to compare slice, volume and patch units at equal annotation cost).
        ranking: The bootstrap ranking of the arms by AUBC over the seeds every arm ran, or None with fewer than
            :data:`MIN_SEEDS_FOR_RANKING` of them.
        ranking_seeds: The seeds every arm ran.
        higher_is_better: Whether higher values of the metric are better (Dice), or lower ones (``loss``, ``hd95``:
            :func:`alseg.core.metrics.lower_is_better`); every comparison, win and rank follows it.
    """

    override: str | None
    rounds: int
    pool_size: int
    arms: tuple[ArmSummary, ...]
    truncated: tuple[str, ...]
    cost_units: tuple[str, ...]
    penalty: PenaltyMatrix
    budget: str
    ranking: Ranking | None
    ranking_seeds: tuple[int, ...]
    higher_is_better: bool = True


def summarise(runs: list[Run], metric: str, reference: str, budget: str = "items") -> list[GroupSummary]:
    """Returns one summary per override group of ``runs`` (sorted by override, strategy and seed).

    Args:
        runs: The runs.
        metric: The ledger metric of the curves.
        reference: The reference strategy of the paired comparisons.
        budget: The cost unit of the AUBC's x axis (:meth:`~alseg.bench.ledgers.Run.cost`).

    Raises:
        ConfigError: A run did not record the ``budget`` unit in every round.
    """
    lacking = sorted(run.name for run in runs if budget not in run.cost_units())
    if lacking:
        known = sorted(set.intersection(*(run.cost_units() for run in runs)))
        raise ConfigError(
            f"The budget unit {budget!r} is not recorded in every round of {', '.join(lacking[:5])}. "
            f"Available: {', '.join(known)}."
        )
    return [
        _group(override, list(group), metric, reference, budget)
        for override, group in groupby(runs, lambda r: r.override)
    ]


def paired(
    arm: ArmSummary, other: ArmSummary, quantity: Literal["aubc", "final"] = "aubc", higher_is_better: bool = True
) -> PairedComparison | None:
    """Returns the paired comparison of a per-seed quantity of ``arm`` with ``other``'s, or None without common seed."""
    index = {seed: i for i, seed in enumerate(other.seeds)}
    pairs = [(i, index[seed]) for i, seed in enumerate(arm.seeds) if seed in index]
    if not pairs:
        return None
    mine, theirs = (np.array(side) for side in zip(*pairs, strict=True))
    return paired_comparison(
        getattr(arm, quantity)[mine], getattr(other, quantity)[theirs], higher_is_better=higher_is_better
    )


def _group(override: str | None, runs: list[Run], metric: str, reference: str, budget: str) -> GroupSummary:
    rounds = min(len(run.records) for run in runs)
    units = _cost_units(runs, rounds)
    strategies = {name: list(arm) for name, arm in groupby(runs, key=lambda run: run.strategy)}
    order = sorted(strategies, key=lambda name: (name != reference, name))
    arms = [_arm(strategies[name], metric, rounds, units, budget) for name in order]
    better = not lower_is_better(metric)
    if order[0] == reference:
        ref = arms[0]
        arms[1:] = [
            dataclasses.replace(
                arm,
                final_vs_reference=paired(arm, ref, "final", better),
                aubc_vs_reference=paired(arm, ref, "aubc", better),
            )
            for arm in arms[1:]
        ]
    common = sorted(set.intersection(*(set(arm.seeds) for arm in arms)))
    return GroupSummary(
        override=override,
        rounds=rounds,
        pool_size=runs[0].pool_size(),
        arms=tuple(arms),
        truncated=tuple(run.name for run in runs if len(run.records) > rounds),
        cost_units=units,
        penalty=penalty_matrix(_by_seed(arms), higher_is_better=better),
        ranking=bootstrap_ranking(
            [arm.aubc[[arm.seeds.index(s) for s in common]] for arm in arms], higher_is_better=better
        )
        if len(common) >= MIN_SEEDS_FOR_RANKING
        else None,
        ranking_seeds=tuple(common),
        higher_is_better=better,
        budget=budget,
    )


def _arm(runs: list[Run], metric: str, rounds: int, units: tuple[str, ...], budget: str) -> ArmSummary:
    labelled = np.stack([run.num_labeled(rounds) for run in runs])
    spent = np.stack([run.cost(budget, rounds) for run in runs])
    values = np.stack([run.metric(metric, rounds) for run in runs])
    return ArmSummary(
        strategy=runs[0].strategy,
        oracle_informed=any(run.oracle_informed for run in runs),
        seeds=tuple(run.seed for run in runs),
        values=values,
        curve=mean_curve(labelled, values),
        cost={unit: np.stack([run.cost(unit, rounds) for run in runs]).mean(axis=0) for unit in units},
        final=values[:, -1],
        aubc=np.array([aubc(x, y) for x, y in zip(spent, values, strict=True)]),
        final_vs_reference=None,
        aubc_vs_reference=None,
        foreground_share=_foreground_share(runs, rounds),
        seconds_per_round=_seconds_per_round(runs, rounds),
        pseudo_label_dice=_pseudo_label_dice(runs, rounds),
    )


def _cost_units(runs: list[Run], rounds: int) -> tuple[str, ...]:
    units = set.intersection(*(run.cost_units() for run in runs))
    shown = [unit for unit in units if unit == "items" or not all(_scales_items(run, unit, rounds) for run in runs)]
    return tuple(
        sorted(shown, key=lambda unit: (COST_UNITS.index(unit) if unit in COST_UNITS else len(COST_UNITS), unit))
    )


def _scales_items(run: Run, unit: str, rounds: int) -> bool:
    """Whether ``unit`` is one constant multiple of ``items`` in every round (exact: costs are integers)."""
    cost, items = run.cost(unit, rounds), run.num_labeled(rounds)
    last = int(np.argmax(items))
    return bool(np.all(cost * items[last] == items * cost[last]))


def _by_seed(arms: list[ArmSummary]) -> np.ndarray:
    """Returns the arms' metric values aligned by seed, ``[K, S, R]`` over all seeds, NaN where an arm lacks one."""
    seeds = sorted(set().union(*(arm.seeds for arm in arms)))
    values = np.full((len(arms), len(seeds), arms[0].values.shape[1]), np.nan)
    for k, arm in enumerate(arms):
        values[k, [seeds.index(seed) for seed in arm.seeds]] = arm.values
    return values


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


def _pseudo_label_dice(runs: list[Run], rounds: int) -> np.ndarray | None:
    per_round = [[d for run in runs for d in run.records[r].pseudo_label_dice.values()] for r in range(1, rounds)]
    if not any(per_round):
        return None
    return np.array([np.mean(values) if values else np.nan for values in per_round])


def _seconds_per_round(runs: list[Run], rounds: int) -> dict[str, float]:
    records = [record for run in runs for record in run.records[:rounds]]
    seconds = {phase: [r.timing_s[phase] for r in records if _timed(r, phase)] for phase in PHASES}
    seconds["wall"] = [record.wall_time_s for record in records]
    return {phase: float(mean_std(values)[0]) if values else float("nan") for phase, values in seconds.items()}


def _timed(record: RoundRecord, phase: str) -> bool:
    """Whether a round ran the phase: rounds after round 0 query; rounds of ``test_each_round`` runs test."""
    if phase == "query":
        return record.round > 0
    return phase in record.timing_s and (phase != "test" or record.timing_s[phase] > 0)
