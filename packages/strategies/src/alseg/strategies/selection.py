"""Selection of the items to label from per-item scores or embeddings: pure and seeded.

Conventions: items are named by string ids; a score is higher = label first. Ties are broken by a
permutation of the ascending-id order (Python string order) drawn from the round's ``seed``: the
same seed gives the same ids, another seed another order among tied items, and a result never
depends on the order the pool was iterated in. (Breaking ties by id order would let the alphabet
decide: the first slices of the first case, whatever the seed.) Randomness comes from an explicit
``seed`` turned into one ``torch.Generator``.
Errors: a bad option (``k``, ``beta``, ``max_per_case``, ``chunk_size``) is a ``ConfigError``;
NaN or negative scores, non-finite embeddings and duplicate ids break the contract of the model
or data module that produced them and are a ``PluginError``; mismatched lengths are a caller bug
(``ValueError``).
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from alseg.core.errors import ConfigError, PluginError

if TYPE_CHECKING:
    import numpy as np


def top_k(scores: "Tensor | np.ndarray", ids: Sequence[str], k: int, *, seed: int) -> list[str]:
    """The ids of the ``k`` highest scores, ties broken by a seeded permutation.

    Args:
        scores: One score per item ``(N,)``; higher = label first.
        ids: The ``N`` item ids, unique, in the order of ``scores``.
        k: How many to select; ``k >= N`` selects all.
        seed: Seed of the tie-break: equal scores are ranked in the order of a random permutation of the
            ascending-id order (see :func:`tie_break_order`).

    Returns:
        Up to ``k`` ids, highest score first.

    Raises:
        PluginError: A score is NaN, or an id is duplicated.
    """
    check_k(k)
    values, order = _by_id(scores, ids)
    _reject_nan(values, ids, order)
    shuffled = tie_break_order(len(order), seed)
    ranked = shuffled[torch.sort(values[shuffled], descending=True, stable=True).indices[:k]]
    return [ids[order[i]] for i in ranked.tolist()]


def tied_picks(scores: "Tensor | np.ndarray", ids: Sequence[str], selected: Sequence[str]) -> int:
    """The number of selected ids that a tie-break chose over an unselected item of the same score.

    For a top-k selection these are the selected members of the tie group straddling the cut: the selected ids whose
    score equals the k-th selected score, when at least one unselected item has that score too (0 when the cut falls
    between two different scores; ``k`` when all scores are equal and the pool is larger than ``k``). For any other
    selection (e.g. top-k spread over cases by :func:`limit_per_case`) every selected id that shares its score with an
    unselected one is counted. Scores are compared exactly.

    Args:
        scores: One score per item ``(N,)``.
        ids: The ``N`` item ids, unique, in the order of ``scores``.
        selected: The selected ids, a subset of ``ids``.

    Returns:
        The number of selected ids whose score an unselected item shares.

    Raises:
        PluginError: An id is duplicated.
        ValueError: A selected id is not among ``ids``.
    """
    values, order = _by_id(scores, ids)
    chosen = set(selected)
    unknown = chosen - set(ids)
    if unknown:
        raise ValueError(f"Selected ids are not among the scored ids: {sorted(unknown)[:10]}.")
    is_selected = torch.tensor([ids[i] in chosen for i in order], dtype=torch.bool)
    return int(torch.isin(values[is_selected], values[~is_selected]).sum())


def tie_break_order(n: int, seed: int) -> Tensor:
    """The tie-break order of ``n`` items in canonical (ascending-id) order: a permutation ``(n,)`` seeded by ``seed``.

    Items of equal score (or distance) rank in the order they appear in this permutation.
    """
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def power_sample(
    scores: "Tensor | np.ndarray", ids: Sequence[str], k: int, *, seed: int, beta: float = 1.0
) -> list[str]:
    """Sample ``k`` distinct ids without replacement, with probability ∝ ``score**beta``.

    Stochastic batch acquisition (PowerBALD, Kirsch et al. 2023) via Gumbel-top-k: rank by
    ``beta * log(score) + Gumbel noise``. Items scoring 0 come after all positive ones, in
    uniformly random order among themselves. Noise is drawn in ascending-id order, so the result
    depends only on the (id, score) pairs and the seed. Large ``beta`` approaches :func:`top_k`.

    Args:
        scores: One finite score ``>= 0`` per item ``(N,)``.
        ids: The ``N`` item ids, unique, in the order of ``scores``.
        k: How many to select; ``k >= N`` selects all (in sampled order).
        seed: Seed of the random generator.
        beta: Exponent ``> 0``; larger concentrates on the highest scores.

    Returns:
        Up to ``k`` distinct ids in the order they were drawn.

    Raises:
        ConfigError: ``beta`` is not a finite number ``> 0``.
        PluginError: A score is NaN, infinite or negative, or an id is duplicated.
    """
    if not 0.0 < beta < float("inf"):
        raise ConfigError(f"The 'beta' option must be a finite number > 0. Got {beta!r}.")
    check_k(k)
    values, order = _by_id(scores, ids)
    bad = torch.nonzero(~torch.isfinite(values) | (values < 0)).flatten()
    if bad.numel():
        i = int(bad[0])
        raise PluginError(
            f"Score of item {ids[order[i]]!r} must be finite and >= 0 for power sampling. Got {values[i].item()}."
        )
    generator = torch.Generator().manual_seed(seed)
    gumbel = -torch.empty_like(values).exponential_(generator=generator).log()
    positive = values > 0
    keys = torch.where(positive, beta * values.log() + gumbel, gumbel)
    # Rank by (positive first, key descending): sort by key, then stably by the tier.
    by_key = torch.sort(keys, descending=True, stable=True).indices
    ranked = by_key[torch.sort(positive[by_key].to(torch.uint8), descending=True, stable=True).indices]
    return [ids[order[i]] for i in ranked[:k].tolist()]


def limit_per_case(
    ranked_ids: Sequence[str],
    case_ids: Mapping[str, str] | Sequence[str],
    k: int,
    max_per_case: int,
) -> list[str]:
    """Keep at most ``max_per_case`` ids of each case from a ranked list, up to ``k`` ids.

    Spreads a batch over cases (e.g. at most two slices per BraTS volume). If fewer than ``k``
    ids survive the limit, the batch is filled up with the skipped ids in rank order, so the
    limit is a preference, not a cap on the batch size. It breaks no ties of its own: it keeps the
    order of ``ranked_ids`` (whose ties :func:`top_k` or :func:`power_sample` broke with the seed).

    Args:
        ranked_ids: Item ids, best first.
        case_ids: The case of each id: a mapping id -> case, or a sequence aligned with
            ``ranked_ids``.
        k: Number of ids to return (fewer only if ``ranked_ids`` is shorter).
        max_per_case: Preferred maximum number of ids per case, ``>= 1``.

    Returns:
        The kept ids in rank order, followed by the fill-up ids in rank order.
    """
    check_k(k)
    if max_per_case < 1:
        raise ConfigError(f"The 'max_per_case' option must be an integer >= 1. Got {max_per_case}.")
    if isinstance(case_ids, Mapping):
        missing = [i for i in ranked_ids if i not in case_ids]
        if missing:
            raise ValueError(f"No case given for item {missing[0]!r}.")
        cases = [case_ids[i] for i in ranked_ids]
    elif len(case_ids) != len(ranked_ids):
        raise ValueError(f"Got {len(case_ids)} case ids for {len(ranked_ids)} ranked ids.")
    else:
        cases = list(case_ids)
    kept: list[str] = []
    skipped: list[str] = []
    taken: Counter[str] = Counter()
    for item, case in zip(ranked_ids, cases, strict=True):
        if len(kept) == k:
            break
        if taken[case] < max_per_case:
            taken[case] += 1
            kept.append(item)
        else:
            skipped.append(item)
    return kept + skipped[: k - len(kept)]


def check_k(k: int) -> None:
    """Raises :class:`ConfigError` unless ``k``, a number of items to select, is >= 0."""
    if k < 0:
        raise ConfigError(f"The number of items to select must be an integer >= 0. Got {k}.")


def _by_id(scores: "Tensor | np.ndarray", ids: Sequence[str]) -> tuple[Tensor, list[int]]:
    """Scores as float64 on CPU, permuted to ascending-id order, and that permutation."""
    values = torch.as_tensor(scores).detach().to("cpu", torch.float64)
    if values.ndim != 1 or values.numel() != len(ids):
        raise ValueError(f"Expected {len(ids)} scores (N,), got shape {tuple(values.shape)}.")
    order = sorted(range(len(ids)), key=ids.__getitem__)
    for a, b in pairwise(order):
        if ids[a] == ids[b]:
            raise PluginError(f"Item id {ids[a]!r} occurs more than once.")
    return values[order], order


def _reject_nan(values: Tensor, ids: Sequence[str], order: list[int]) -> None:
    nan = torch.nonzero(torch.isnan(values)).flatten()
    if nan.numel():
        raise PluginError(f"Score of item {ids[order[int(nan[0])]]!r} is NaN.")
