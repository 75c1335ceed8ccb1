"""Blocks of adjacent pool slices: the candidates of block selection and a greedy, non-overlapping, seeded choice.

Pure: no model, no I/O. A block is a run of consecutive slice indices of one case, all of them in the pool. The
annotator labels its end slices (both, or the one slice of a single-slice block), so a block of two or more slices
costs 2 labels and a single slice 1.

Fallback order (:func:`select_blocks`): blocks of ``thickness`` slices are taken best first while at least 2 labels
of the budget are left and a full block still fits beside the blocks already taken; then blocks one slice thinner,
and so on down to 2 slices; the last label of an odd budget, and any budget left when no block of 2 fits, goes to
single slices.
"""

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from alseg.core.errors import ConfigError
from alseg.strategies.selection import check_k, top_k


@dataclass(frozen=True)
class Block:
    """Consecutive slices of one case, top to bottom.

    Attributes:
        ids: The slice ids, by ascending slice index.
    """

    ids: tuple[str, ...]

    @property
    def ends(self) -> tuple[str, ...]:
        """The slices the oracle labels: the top and the bottom one (the one slice of a single-slice block)."""
        return self.ids[:1] if len(self.ids) == 1 else (self.ids[0], self.ids[-1])

    @property
    def inner(self) -> tuple[str, ...]:
        """The slices between the ends."""
        return self.ids[1:-1]


def check_thickness(thickness: int) -> None:
    """Raises :class:`ConfigError` unless ``thickness``, the slices of a block, is an integer >= 2."""
    if not isinstance(thickness, int) or isinstance(thickness, bool) or thickness < 2:
        raise ConfigError(f"The 'block_thickness' option must be an integer >= 2. Got {thickness!r}.")


def runs(positions: Mapping[str, tuple[str, int]]) -> list[list[str]]:
    """Groups slice ids into runs of consecutive slice indices of one case.

    Args:
        positions: Slice id → ``(case id, slice index)``.

    Returns:
        The runs, each by ascending slice index, ordered by case and first index.
    """
    by_case: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for item_id, (case_id, index) in positions.items():
        by_case[case_id].append((index, item_id))
    found: list[list[str]] = []
    for case_id in sorted(by_case):
        slices = sorted(by_case[case_id])
        for n, (index, item_id) in enumerate(slices):
            if n == 0 or index != slices[n - 1][0] + 1:
                found.append([])
            found[-1].append(item_id)
    return found


def select_blocks(
    positions: Mapping[str, tuple[str, int]], scores: Mapping[str, float] | None, budget: int, thickness: int, seed: int
) -> list[Block]:
    """Picks non-overlapping blocks of pool slices whose end slices fit the labelling budget.

    Blocks of one thickness are ranked by the mean score of their slices (``scores``; higher = label first) or, with
    ``scores=None``, in a random order; ties and the random order come from ``seed``. Each block is taken if none of
    its slices is in a block taken before. Thinner blocks follow as the module docstring says.

    Args:
        positions: Every pool slice: id → ``(case id, slice index)``.
        scores: Score of every pool slice, or None for random blocks.
        budget: Labels to spend (end slices), ``>= 0``.
        thickness: Slices of a full block, ``>= 2``.
        seed: Seed of the tie-break and of the random order.

    Returns:
        The blocks in the order they were taken.
    """
    check_k(budget)
    check_thickness(thickness)
    pool_runs = runs(positions)
    taken: set[str] = set()
    blocks: list[Block] = []
    for size in range(thickness, 0, -1):
        cost = min(size, 2)
        for window in _ranked_windows(pool_runs, size, scores, seed):
            if budget < cost:
                break
            if taken.isdisjoint(window):
                blocks.append(Block(window))
                taken.update(window)
                budget -= cost
    return blocks


def _ranked_windows(
    pool_runs: list[list[str]], size: int, scores: Mapping[str, float] | None, seed: int
) -> list[tuple[str, ...]]:
    """Every window of ``size`` consecutive slices within a run, best first."""
    windows = [tuple(run[start : start + size]) for run in pool_runs for start in range(len(run) - size + 1)]
    if not windows:
        return []
    if scores is None:
        means = torch.zeros(len(windows), dtype=torch.float64)
    else:
        means = torch.tensor([sum(scores[i] for i in w) / size for w in windows], dtype=torch.float64)
    names = [window[0] for window in windows]  # a window is named by its top slice (unique for one size)
    by_name = dict(zip(names, windows, strict=True))
    return [by_name[name] for name in top_k(means, names, len(windows), seed=seed)]
