"""Representativeness scores that follow a growing labelled set; the greedy loop that adds an uncertainty term.

Pure torch: no I/O, no logging; results live on the device of the inputs. Rows are the items of labelled ∪ pool, pool
rows first (rows ``0 .. P-1``, in ascending-id order), then the labelled rows. A score source gives every row a
representativeness score with :meth:`~ScoreSource.scores` (higher = label first) and takes one more labelled row with
:meth:`~ScoreSource.add`, so that each pick of a round changes the scores of the next one. Memory is ``O(N·D + N)``:
distances are computed ``chunk_size`` rows at a time against one new centre (or a block of labelled centres), never
as an ``N x N`` matrix.
"""

from typing import Protocol

import torch
from torch import Tensor

from alseg.core.errors import ConfigError

METRICS = ("cosine", "euclidean")
DISTANCE_AGGREGATIONS = ("mean", "min")

# Labelled centres per distance block at the start: a block holds chunk_size x 256 distances.
_CENTRE_BLOCK = 256


class ScoreSource(Protocol):
    """Representativeness of every row given the labelled rows; updated one labelled row at a time."""

    def scores(self) -> Tensor:
        """Returns float64 scores ``(N,)``; higher = label first."""
        ...

    def add(self, index: int) -> None:
        """Counts row ``index`` as labelled from now on."""
        ...


class DistanceScores:
    """Distance of every row to the labelled rows (the centres), aggregated by mean or min.

    A row far from everything labelled scores high. Without any centre every score is 0 (the seeded tie-break, or the
    uncertainty term, then decides the first pick).

    Args:
        features: Feature vectors ``(N, D)``; cast to float32.
        labelled: Boolean ``(N,)``, true for rows that are centres from the start.
        metric: ``euclidean`` or ``cosine`` (1 − cosine similarity; a zero vector is at distance 1 from every row).
        aggregation: ``mean`` (average distance to the centres) or ``min`` (distance to the nearest centre).
        chunk_size: Rows per distance block, ``>= 1``.
    """

    def __init__(self, features: Tensor, labelled: Tensor, metric: str, aggregation: str, chunk_size: int) -> None:
        check_choice("metric", metric, METRICS)
        check_choice("distance_aggregation", aggregation, DISTANCE_AGGREGATIONS)
        if chunk_size < 1:
            raise ConfigError(f"The 'chunk_size' option must be an integer >= 1. Got {chunk_size}.")
        x = features.to(torch.float32)
        self._x = torch.nn.functional.normalize(x, dim=1) if metric == "cosine" else x
        self._metric, self._aggregation, self._chunk = metric, aggregation, chunk_size
        empty = torch.inf if aggregation == "min" else 0.0
        self._total = torch.full((x.shape[0],), empty, dtype=torch.float64, device=x.device)
        self._centres = 0
        rows = torch.nonzero(labelled.to(device=x.device, dtype=torch.bool)).flatten()
        for start in range(0, rows.numel(), _CENTRE_BLOCK):
            self._update(self._x[rows[start : start + _CENTRE_BLOCK]])

    def scores(self) -> Tensor:
        """Returns the mean or min distance of every row to the centres ``(N,)``, float64 (0 without centres)."""
        if self._centres == 0:
            return torch.zeros_like(self._total)
        return self._total / self._centres if self._aggregation == "mean" else self._total.clone()

    def add(self, index: int) -> None:
        """Makes row ``index`` a centre: one ``O(N·D)`` pass."""
        self._update(self._x[index : index + 1])

    def _update(self, centres: Tensor) -> None:
        """Folds the distances of every row to ``centres`` ``(M, D)`` into the running sum or min."""
        for start in range(0, self._x.shape[0], self._chunk):
            distances = pairwise_distances(self._x[start : start + self._chunk], centres, self._metric).double()
            block = self._total[start : start + self._chunk]
            if self._aggregation == "mean":
                block += distances.sum(dim=1)
            else:
                torch.minimum(block, distances.amin(dim=1), out=block)
        self._centres += centres.shape[0]


class GroupScores:
    """The unlabelled fraction of every row's group: a cluster of the features, or a case (volume).

    Args:
        groups: Group index of every row ``(N,)``, integers ``>= 0``.
        labelled: Boolean ``(N,)``, true for labelled rows.
    """

    def __init__(self, groups: Tensor, labelled: Tensor) -> None:
        self._groups = groups.to(torch.long)
        self._size = torch.bincount(self._groups).to(torch.float64)
        taken = self._groups[labelled.to(device=groups.device, dtype=torch.bool)]
        self._taken = torch.bincount(taken, minlength=self._size.numel()).to(torch.float64)

    def scores(self) -> Tensor:
        """Returns ``1 − (labelled rows of the group) / (rows of the group)`` for every row ``(N,)``, float64."""
        return (1.0 - self._taken / self._size)[self._groups]

    def add(self, index: int) -> None:
        """Counts row ``index`` as labelled in its group."""
        self._taken[self._groups[index]] += 1.0


def pairwise_distances(rows: Tensor, centres: Tensor, metric: str) -> Tensor:
    """Distances ``(R, M)`` between rows ``(R, D)`` and centres ``(M, D)``; cosine expects unit-length rows."""
    if metric == "cosine":
        return (1.0 - rows @ centres.T).clamp_(0.0, 2.0)
    return torch.cdist(rows, centres)


def min_max(values: Tensor, mask: Tensor) -> Tensor:
    """Scales the entries of ``values`` ``(N,)`` where ``mask`` is true to [0, 1]; a constant vector gives 0, not NaN.

    Entries outside ``mask`` are 0. Returns float64.
    """
    values = values.to(torch.float64)
    if not bool(mask.any()):
        return torch.zeros_like(values)
    kept = values[mask]
    low, span = kept.min(), kept.max() - kept.min()
    scaled = (values - low) / span if span > 0 else torch.zeros_like(values)
    return torch.where(mask, scaled, 0.0)


def greedy_select(
    k: int, tie_rank: Tensor, uncertainty: Tensor | None, source: ScoreSource | None, weight: float
) -> list[int]:
    """Picks pool rows one at a time by ``weight·minmax(uncertainty) + (1 − weight)·minmax(representativeness)``.

    Before every pick both terms are min-max scaled over the pool rows still to choose from; the picked row then
    counts as labelled in ``source``, so the representativeness of the next pick sees it. The uncertainty is fixed for
    the round. Ties go to the lowest ``tie_rank`` (the row's place in the round's seeded permutation).

    Args:
        k: Number of rows to pick; capped at the pool size ``P``.
        tie_rank: Place of every pool row in the tie-break permutation ``(P,)``.
        uncertainty: Uncertainty of the pool rows ``(P,)`` (higher = more uncertain), or None when ``weight`` is 0.
        source: Representativeness of the rows (``N >= P`` rows, pool rows first), or None when ``weight`` is 1.
        weight: The uncertainty weight λ in [0, 1].

    Returns:
        The picked pool rows, in pick order.
    """
    pool = tie_rank.numel()
    available = torch.ones(pool, dtype=torch.bool, device=tie_rank.device)
    picks: list[int] = []
    for _ in range(min(k, pool)):
        total = torch.zeros(pool, dtype=torch.float64, device=tie_rank.device)
        if uncertainty is not None and weight > 0:
            total += weight * min_max(uncertainty, available)
        if source is not None and weight < 1:
            total += (1.0 - weight) * min_max(source.scores()[:pool], available)
        best = total[available].max()
        index = int(torch.argmin(torch.where(available & (total == best), tie_rank, pool)))
        picks.append(index)
        available[index] = False
        if source is not None:
            source.add(index)
    return picks


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    """Raises :class:`ConfigError` naming ``option`` and listing ``choices`` unless ``value`` is one of them."""
    if value not in choices:
        raise ConfigError(f"The '{option}' option of the strategy must be one of: {', '.join(choices)}. Got {value!r}.")
