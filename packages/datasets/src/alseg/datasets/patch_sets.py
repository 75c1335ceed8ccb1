"""The item sets of a patch pool: the overlap rule kept by the pool itself, and voxel counts after overlap.

The pool holds the candidate boxes that a strategy may still pick: after every labelling, boxes whose overlap with
the labelled boxes exceeds ``max_overlap`` leave it (they could never be picked), so a run ends when no box fits
the rule any more, and a strategy only has to keep the rule among its own picks
(:func:`~alseg.core.patch_pool.select_boxes`).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from alseg.core.errors import ConfigError
from alseg.core.patch_pool import Box, Coverage, PatchPool, select_boxes
from alseg.datasets.item_datasets import ItemDataset
from alseg.datasets.item_sets import ItemSets
from alseg.datasets.patch_items import parse_patch_id
from alseg.datasets.patch_reader import PatchReader, PatchTrainingDataset
from alseg.datasets.patches import PatchSampler


def _boxes(ids: Sequence[str]) -> dict[str, Box]:
    return {i: box for i in ids if (box := parse_patch_id(i)) is not None}


class PatchSets(ItemSets):
    """Training (labelled boxes), pool (candidate boxes), validation and test (whole volumes) ids.

    Args:
        reader: The patch reader (its ``train`` list is this object's ``train``).
        pool: Every candidate box of the training cases, labelled or not.
        val: Validation volume ids.
        test: Test volume ids.
        owner: Name of the data module, for error messages.
        geometry: The pool's ``patch_size``, ``window`` and ``max_overlap`` (a :class:`PatchPool` without boxes).
        initial_size: Boxes labelled at the start: a random order seeded by ``seed``, kept to the overlap rule.
        seed: Seed of the initial boxes.
    """

    reader: PatchReader

    def __init__(
        self,
        reader: PatchReader,
        pool: list[str],
        val: list[str],
        test: list[str],
        owner: str,
        geometry: PatchPool,
        initial_size: int,
        seed: int,
    ) -> None:
        super().__init__(reader, reader.train, list(pool), val, test, owner)
        self.geometry = geometry
        if not 0 <= initial_size <= len(pool):
            raise ConfigError(
                f"The 'initial_training_set_size' option of the data module must be between 0 and the {len(pool)} "
                f"candidate boxes of the training cases. Got {initial_size}."
            )
        order = np.random.default_rng(seed).permutation(len(pool)).tolist()
        initial = select_boxes([pool[i] for i in order], self.patch_pool(), initial_size)
        self.label(initial, {})

    def label(self, ids: list[str], pseudo_labels: dict[str, Any], labels: dict[str, Any] | None = None) -> None:
        """Labels like :meth:`ItemSets.label`, then drops the pool boxes that the overlap rule now excludes."""
        super().label(ids, pseudo_labels, labels)
        coverage = Coverage(self.geometry.case_shapes, _boxes(self.train).values())
        limit = self.geometry.max_overlap
        self.pool[:] = [i for i, box in _boxes(self.pool).items() if coverage.overlap(box) <= limit]

    def training_set(self, patches: PatchSampler | None) -> Dataset:
        """Training patches centred in labelled boxes (:class:`~alseg.datasets.patch_reader.PatchTrainingDataset`)."""
        assert patches is not None, "the patch unit is 3D, so the data module samples training patches"
        return PatchTrainingDataset(self.reader, self.train, patches)

    def pool_cases(self) -> Dataset:
        """The whole training volumes that hold pool boxes, in case-id order, as pool items (no label)."""
        cases = sorted({box.case_id for box in _boxes(self.pool).values()})
        return ItemDataset(self.reader.volumes, cases, "pool")

    def patch_pool(self) -> PatchPool:
        """The pool's boxes, the labelled boxes and the geometry (no label)."""
        g = self.geometry
        return PatchPool(g.patch_size, g.window, g.max_overlap, g.case_shapes, _boxes(self.pool), _boxes(self.train))

    def new_voxels(self, ids: list[str]) -> int:
        """Voxels of the boxes of ``ids`` that no other oracle-labelled box covers (each voxel counted once)."""
        wanted = set(ids)
        others = [b for i, b in _boxes(self.train).items() if i not in wanted and i not in self.reader.pseudo_labels]
        coverage = Coverage(self.geometry.case_shapes, others)
        return sum(coverage.add(box) for box in _boxes(ids).values())
