"""Queries on patch pools: rank the boxes (by score, power sampling or at random), then pick under the overlap rule.

Every patch strategy ends in :func:`~alseg.core.patch_pool.select_boxes`: boxes are taken in rank order, skipping
any that labelled boxes or boxes picked before it cover by more than the pool's ``max_overlap``.
"""

import dataclasses
from typing import Protocol

import torch
from torch import Tensor

from alseg.core.errors import ConfigError
from alseg.core.model import PytorchModel
from alseg.core.patch_pool import PatchPool, select_boxes
from alseg.core.query_view import QueryView
from alseg.strategies.patch_scores import score_boxes
from alseg.strategies.selection import power_sample, tie_break_order, tied_picks, top_k


class ScoreStrategy(Protocol):
    """What a patch query needs of a score-based strategy (e.g. :class:`~alseg.strategies.entropy.EntropyStrategy`).

    Attributes:
        mc_samples: MC-dropout samples per window, or None.
        power: Power-sampling exponent, or None for top-k.
    """

    mc_samples: int | None
    power: float | None

    def voxel_scores(self, probabilities: Tensor, multi_label: bool) -> Tensor:
        """Per-voxel scores ``[B, *S]`` of probabilities ``[B, C, *S]`` (``[K, B, C, *S]`` with MC samples)."""
        ...


def check_patch_reduction(
    aggregation: str, top_q: float | None, exclude_background: bool, per_case: int | None
) -> None:
    """Raises :class:`ConfigError` for item reductions that a box's score (the mean of its voxels) cannot follow."""
    if aggregation != "mean" or top_q is not None or exclude_background or per_case is not None:
        raise ConfigError(
            "On a patch pool a box scores the mean of its voxel scores: the strategy's 'aggregation' option must be "
            "'mean', without 'top_q', 'exclude_background' or 'prefer_unique_cases'. Got aggregation "
            f"{aggregation!r}, top_q {top_q!r}, exclude_background {exclude_background!r}, prefer_unique_cases "
            f"{per_case!r}."
        )


def refuse_patch_pool(data_module: QueryView, strategy: str) -> None:
    """Raises :class:`ConfigError` on a patch pool, for a strategy that cannot pick boxes under its overlap rule.

    Args:
        data_module: The strategy's view.
        strategy: The strategy's registered name, for the message.
    """
    pool = data_module.patch_pool()
    if pool is not None:
        raise ConfigError(
            f"Strategy {strategy} cannot keep the 'max_overlap' rule (here {pool.max_overlap}) of a patch pool "
            "(annotation_unit 'patch'): its greedy picks do not go through the rule. Use entropy, bald, "
            "power_entropy, power_bald, random, fg_random, oracle_fg or fg_aware_random on patch pools."
        )


def query_scored_patches(
    strategy: ScoreStrategy,
    model: PytorchModel,
    data_module: QueryView,
    pool: PatchPool,
    k: int,
    seed: int,
) -> list[str]:
    """Scores every box, ranks the boxes (top-k with the seeded tie-break, or power sampling) and picks ``k``.

    With top-k ranking the picks a tie-break decided are recorded as ``strategy_notes.tied_picks``.
    """
    scores = score_boxes(model, data_module, pool, strategy.voxel_scores, strategy.mc_samples, seed)
    ids = sorted(scores)
    values = torch.tensor([scores[i] for i in ids], dtype=torch.float64)
    if strategy.power is None:
        ranked = top_k(values, ids, len(ids), seed=seed)
    else:
        ranked = power_sample(values, ids, len(ids), seed=seed, beta=strategy.power)
    selected = select_boxes(ranked, pool, k)
    if strategy.power is None:
        data_module.record("tied_picks", tied_picks(values, ids, selected))
    return selected


def shuffled(ids: list[str], seed: int) -> list[str]:
    """``ids`` in a random order seeded by ``seed``, independent of their given order (as ``random_choice``)."""
    ordered = sorted(ids)
    return [ordered[i] for i in tie_break_order(len(ordered), seed).tolist()]


def random_patches(pool: PatchPool, k: int, seed: int) -> list[str]:
    """``k`` boxes in a random order seeded by ``seed``, under the overlap rule."""
    return select_boxes(shuffled(list(pool.pool), seed), pool, k)


def patches_with_foreground(pool: PatchPool, foreground: list[str], k: int, fraction: float, seed: int) -> list[str]:
    """``round(fraction · k)`` random boxes of ``foreground`` (fewer if the rule leaves fewer), then random others.

    Args:
        pool: The patch pool.
        foreground: The pool ids that count as holding foreground.
        k: The number of boxes wanted.
        fraction: The share of ``k`` drawn from ``foreground``, in [0, 1].
        seed: Seed of both draws.

    Returns:
        The foreground picks, then the others; all of them keep the overlap rule together.
    """
    picked = select_boxes(shuffled(foreground, seed), pool, round(fraction * k))
    labelled = {**pool.labelled, **{i: pool.pool[i] for i in picked}}
    rest = sorted(set(pool.pool) - set(picked))
    after = dataclasses.replace(pool, labelled=labelled)
    return picked + select_boxes(shuffled(rest, seed + 1), after, k - len(picked))
