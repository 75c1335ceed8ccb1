"""Greedy k-center selection for core-set active learning, chunked so that memory stays O(N·D + N)."""

from dataclasses import dataclass

import torch
from torch import Tensor

from alseg.core.errors import ConfigError, PluginError
from alseg.strategies.selection import check_k, tie_break_order

# Labelled centres per distance block when seeding k-center greedy with the labelled set: a block
# holds chunk_size x 256 distances (4 MiB at the default), yet is still matrix-matrix work.
_CENTRE_BLOCK = 256


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


def k_center_greedy(features: Tensor, labelled: Tensor, k: int, chunk_size: int = 4096, *, seed: int) -> KCenterResult:
    """Greedy k-center core-set selection (Sener & Savarese, 2018).

    Repeatedly picks the point farthest (squared Euclidean, float32) from its nearest centre,
    starting from the labelled points as centres. Without labelled points, the first pick is the
    point farthest from the feature mean. Ties (e.g. identical embeddings) go to the row that comes
    first in a permutation of the rows seeded by ``seed`` (:func:`~alseg.strategies.selection.tie_break_order`),
    so pass the rows in a canonical order (e.g. by id) for a result that depends only on the items
    and the seed. Distances are updated ``chunk_size`` rows at a time, never as an ``N x N``
    matrix: memory is ``O(N·D + N)``. Runs on the device of ``features``.

    Args:
        features: Embeddings ``(N, D)``; cast to float32.
        labelled: Boolean ``(N,)``, true for points that are already centres.
        k: Number of points to pick; capped at the number of unlabelled points.
        chunk_size: Rows per distance block, ``>= 1``.
        seed: Seed of the tie-break.

    Returns:
        The picked indices and the final covering radius.

    Raises:
        PluginError: An embedding is not finite.
    """
    check_k(k)
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
    tie_rank = torch.argsort(tie_break_order(x.shape[0], seed)).to(x.device)  # each row's place in the permutation
    picks: list[int] = []
    if centres.numel() == 0 and k > 0 and x.shape[0] > 0:
        to_mean = torch.full_like(min_dist, torch.inf)
        _update_with_centre(to_mean, x, x.mean(dim=0), chunk_size)
        picks.append(_pick(to_mean, min_dist, x, chunk_size, tie_rank))
    for _ in range(min(k, int((~is_centre).sum())) - len(picks)):
        picks.append(_pick(min_dist, min_dist, x, chunk_size, tie_rank))
    if not (centres.numel() or picks):
        return KCenterResult(indices=picks, radius=float("inf"))
    return KCenterResult(indices=picks, radius=float(min_dist.max().clamp_min(0.0).sqrt()))


def _pick(priority: Tensor, min_dist: Tensor, x: Tensor, chunk_size: int, tie_rank: Tensor) -> int:
    """Pick the argmax of ``priority`` (on ties the lowest ``tie_rank``) and make it a centre."""
    candidates = torch.where(priority == priority.max(), tie_rank, tie_rank.numel())
    index = int(torch.argmin(candidates))
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
