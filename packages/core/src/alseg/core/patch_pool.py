"""Patch pools: boxes inside volumes as the annotation unit, and the overlap rule that selections of them obey.

Pure: no model, no I/O. A data module whose items are boxes (``annotation_unit: patch``) describes its pool as a
:class:`PatchPool` (the boxes of the pool and of the labelled set, the volumes' shapes; no label), which a strategy
gets through :meth:`~alseg.core.query_view.QueryView.patch_pool`. Overlap is measured against the union of boxes:
the *overlap* of a box is the fraction of its voxels that already-labelled or already-picked boxes cover.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from alseg.core.errors import ConfigError


@dataclass(frozen=True)
class Box:
    """An axis-aligned box of voxels in one volume.

    Attributes:
        case_id: The volume.
        start: First voxel ``(x0, y0, z0)``.
        size: Extent ``(sx, sy, sz)``, each >= 1.
    """

    case_id: str
    start: tuple[int, ...]
    size: tuple[int, ...]

    @property
    def slices(self) -> tuple[slice, ...]:
        """Index of the box in an array ``[*spatial]`` of its volume."""
        return tuple(slice(a, a + n) for a, n in zip(self.start, self.size, strict=True))

    @property
    def voxels(self) -> int:
        """The number of voxels in the box."""
        return math.prod(self.size)


@dataclass(frozen=True)
class PatchPool:
    """What a strategy may know of a patch pool: geometry only, never a label.

    Attributes:
        patch_size: Size of every candidate box ``(sx, sy, sz)``.
        window: Window of the sliding-window inference that scores a volume (the training patch size).
        max_overlap: The largest overlap, in [0, 1), a selected box may have with labelled or already-picked boxes.
        case_shapes: Spatial shape of every volume holding a pool or labelled box.
        pool: Pool id → box, every candidate box still unlabelled.
        labelled: Labelled id → box.
    """

    patch_size: tuple[int, ...]
    window: tuple[int, ...]
    max_overlap: float
    case_shapes: Mapping[str, tuple[int, ...]]
    pool: Mapping[str, Box]
    labelled: Mapping[str, Box]


def check_max_overlap(max_overlap: float) -> None:
    """Raises :class:`ConfigError` unless ``max_overlap`` is a number in [0, 1)."""
    if isinstance(max_overlap, bool) or not isinstance(max_overlap, int | float) or not 0 <= max_overlap < 1:
        raise ConfigError(f"The 'max_overlap' option of the data module must be in [0, 1). Got {max_overlap!r}.")


class Coverage:
    """The union of boxes per volume, as boolean masks ``[*spatial]``.

    Args:
        case_shapes: Spatial shape of every volume a box may lie in.
        boxes: Boxes covered from the start (e.g. the labelled ones).
    """

    def __init__(self, case_shapes: Mapping[str, Sequence[int]], boxes: Iterable[Box] = ()) -> None:
        self._shapes = case_shapes
        self._masks: dict[str, torch.Tensor] = {}
        for box in boxes:
            self.add(box)

    def _mask(self, case_id: str) -> torch.Tensor:
        if case_id not in self._masks:
            self._masks[case_id] = torch.zeros(tuple(self._shapes[case_id]), dtype=torch.bool)
        return self._masks[case_id]

    def covered(self, box: Box) -> int:
        """The number of voxels of ``box`` already covered."""
        mask = self._masks.get(box.case_id)
        return 0 if mask is None else int(mask[box.slices].sum())

    def overlap(self, box: Box) -> float:
        """The covered fraction of ``box``, in [0, 1]."""
        return self.covered(box) / box.voxels

    def add(self, box: Box) -> int:
        """Covers ``box``; returns the number of its voxels that were not covered before."""
        new = box.voxels - self.covered(box)
        self._mask(box.case_id)[box.slices] = True
        return new

    def total(self) -> int:
        """The number of covered voxels over all volumes."""
        return sum(int(mask.sum()) for mask in self._masks.values())


def select_boxes(ranked_ids: Iterable[str], pool: PatchPool, k: int) -> list[str]:
    """Takes boxes greedily in rank order, skipping those that overlap labelled or picked boxes too much.

    A box is picked when at most ``pool.max_overlap`` of its voxels lie in labelled boxes or in boxes picked before it
    (with the default 0: when it touches none of them).

    Args:
        ranked_ids: Pool ids, best first (ties already broken, e.g. by the round's seeded permutation).
        pool: The patch pool (boxes, labelled boxes, ``max_overlap``).
        k: How many boxes to pick at most.

    Returns:
        Up to ``k`` ids in the order they were picked; fewer when no further box satisfies the rule.
    """
    coverage = Coverage(pool.case_shapes, pool.labelled.values())
    picked: list[str] = []
    for item_id in ranked_ids:
        if len(picked) >= k:
            break
        box = pool.pool[item_id]
        if coverage.overlap(box) <= pool.max_overlap:
            coverage.add(box)
            picked.append(item_id)
    return picked
