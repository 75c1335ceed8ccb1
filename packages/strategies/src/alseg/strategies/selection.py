"""Selection of the items to label from per-item scores or embeddings: pure and seeded.

Conventions: items are named by string ids; a score is higher = label first; ties are broken by
ascending id (Python string order), so a result never depends on the order the pool was
iterated in. Randomness comes from an explicit ``seed`` turned into one ``torch.Generator``.
Errors: a bad option (``k``, ``beta``, ``max_per_case``, ``chunk_size``) is a ``ConfigError``;
NaN or negative scores, non-finite embeddings and duplicate ids break the contract of the model
or data module that produced them and are a ``PluginError``; mismatched lengths are a caller bug
(``ValueError``).
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from alseg.core.errors import ConfigError, PluginError

if TYPE_CHECKING:
    import numpy as np

# Labelled centres per distance block when seeding k-center greedy with the labelled set: a block
# holds chunk_size x 256 distances (4 MiB at the default), yet is still matrix-matrix work.
_CENTRE_BLOCK = 256


def top_k(scores: "Tensor | np.ndarray", ids: Sequence[str], k: int) -> list[str]:
    """The ids of the ``k`` highest scores, ties broken by ascending id.

    Args:
        scores: One score per item ``(N,)``; higher = label first.
        ids: The ``N`` item ids, unique, in the order of ``scores``.
        k: How many to select; ``k >= N`` selects all.

    Returns:
        Up to ``k`` ids, highest score first.

    Raises:
        PluginError: A score is NaN, or an id is duplicated.
    """
    values, order = _by_id(scores, ids, k)
    _reject_nan(values, ids, order)
    ranked = torch.sort(values, descending=True, stable=True).indices[:k]
    return [ids[order[i]] for i in ranked.tolist()]


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
    values, order = _by_id(scores, ids, k)
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
    limit is a preference, not a cap on the batch size.

    Args:
        ranked_ids: Item ids, best first.
        case_ids: The case of each id: a mapping id -> case, or a sequence aligned with
            ``ranked_ids``.
        k: Number of ids to return (fewer only if ``ranked_ids`` is shorter).
        max_per_case: Preferred maximum number of ids per case, ``>= 1``.

    Returns:
        The kept ids in rank order, followed by the fill-up ids in rank order.
    """
    _check_k(k)
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


@dataclass(frozen=True)
class KCenterResult:
    """Result of :func:`k_center_greedy`.

    Attributes:
        indices: Picked rows of ``features``, in pick order.
        radius: Covering radius after the picks: the largest Euclidean distance of any point to
            its nearest centre (labelled or picked); ``inf`` if there is no centre at all.
    """

    indices: list[int]
    radius: float


def k_center_greedy(features: Tensor, labelled: Tensor, k: int, chunk_size: int = 4096) -> KCenterResult:
    """Greedy k-center core-set selection (Sener & Savarese, 2018).

    Repeatedly picks the point farthest (squared Euclidean, float32) from its nearest centre,
    starting from the labelled points as centres. Without labelled points, the first pick is the
    point farthest from the feature mean. Ties go to the lowest index. Distances are updated
    ``chunk_size`` rows at a time, never as an ``N x N`` matrix: memory is ``O(N·D + N)``.
    Runs on the device of ``features``.

    Args:
        features: Embeddings ``(N, D)``; cast to float32.
        labelled: Boolean ``(N,)``, true for points that are already centres.
        k: Number of points to pick; capped at the number of unlabelled points.
        chunk_size: Rows per distance block, ``>= 1``.

    Returns:
        The picked indices and the final covering radius.

    Raises:
        PluginError: An embedding is not finite.
    """
    _check_k(k)
    if chunk_size < 1:
        raise ConfigError(f"The 'chunk_size' option must be an integer >= 1. Got {chunk_size}.")
    x = features.to(torch.float32)
    if x.ndim != 2 or labelled.shape != (x.shape[0],):
        raise ValueError(
            f"Expected features (N, D) and labelled (N,), got {tuple(x.shape)} and {tuple(labelled.shape)}."
        )
    _reject_non_finite(x, chunk_size)
    is_centre = labelled.to(device=x.device, dtype=torch.bool)
    min_dist = torch.full((x.shape[0],), torch.inf, device=x.device)
    centres = torch.nonzero(is_centre).flatten()
    for start in range(0, centres.numel(), _CENTRE_BLOCK):
        _update_with_block(min_dist, x, x[centres[start : start + _CENTRE_BLOCK]], chunk_size)
    min_dist[is_centre] = -torch.inf  # never picked again; counts as 0 in the radius
    picks: list[int] = []
    if centres.numel() == 0 and k > 0 and x.shape[0] > 0:
        to_mean = torch.full_like(min_dist, torch.inf)
        _update_with_centre(to_mean, x, x.mean(dim=0), chunk_size)
        picks.append(_pick(to_mean, min_dist, x, chunk_size))
    for _ in range(min(k, int((~is_centre).sum())) - len(picks)):
        picks.append(_pick(min_dist, min_dist, x, chunk_size))
    if not (centres.numel() or picks):
        return KCenterResult(indices=picks, radius=float("inf"))
    return KCenterResult(indices=picks, radius=float(min_dist.max().clamp_min(0.0).sqrt()))


def _pick(priority: Tensor, min_dist: Tensor, x: Tensor, chunk_size: int) -> int:
    """Pick the argmax of ``priority`` (first on ties) and make it a centre."""
    index = int(torch.argmax(priority))
    _update_with_centre(min_dist, x, x[index], chunk_size)
    min_dist[index] = -torch.inf
    return index


def _update_with_centre(min_dist: Tensor, x: Tensor, centre: Tensor, chunk_size: int) -> None:
    # The direct difference form is exact up to rounding (never negative) and, for a single
    # centre, measured faster on CPU than the matmul expansion or torch.cdist.
    for start in range(0, x.shape[0], chunk_size):
        rows = x[start : start + chunk_size]
        dist = (rows - centre).square_().sum(dim=1)
        min_dist[start : start + chunk_size].clamp_max_(dist)  # in place: min(old, new)


def _update_with_block(min_dist: Tensor, x: Tensor, centres: Tensor, chunk_size: int) -> None:
    # torch.cdist uses the matmul expansion for large blocks and clamps its round-off at 0.
    for start in range(0, x.shape[0], chunk_size):
        dist = torch.cdist(x[start : start + chunk_size], centres).square_().amin(dim=1)
        min_dist[start : start + chunk_size].clamp_max_(dist)  # in place: min(old, new)


def _reject_non_finite(x: Tensor, chunk_size: int) -> None:
    for start in range(0, x.shape[0], chunk_size):
        bad = torch.nonzero(~torch.isfinite(x[start : start + chunk_size]).all(dim=1)).flatten()
        if bad.numel():
            raise PluginError(f"Embedding of row {start + int(bad[0])} is not finite.")


def _check_k(k: int) -> None:
    if k < 0:
        raise ConfigError(f"The number of items to select must be an integer >= 0. Got {k}.")


def _by_id(scores: "Tensor | np.ndarray", ids: Sequence[str], k: int) -> tuple[Tensor, list[int]]:
    """Scores as float64 on CPU, permuted to ascending-id order, and that permutation."""
    _check_k(k)
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
