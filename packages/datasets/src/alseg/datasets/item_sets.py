"""The item ids of a data module's four sets and the oracle that moves pool items to the training set."""

from collections import Counter
from typing import Any

import torch
from torch.utils.data import Dataset

from alseg.core.errors import PluginError
from alseg.core.patch_pool import PatchPool
from alseg.datasets.item_datasets import ItemDataset
from alseg.datasets.item_source import ItemSource
from alseg.datasets.patches import PatchSampler


class ItemSets:
    """Training, pool, validation and test item ids; the datasets share (and so follow) these lists.

    Args:
        reader: Builds the items and holds the pseudo labels (an :class:`~alseg.datasets.item_source.ItemSource`).
        train: Initially labelled item ids.
        pool: Unlabelled item ids, in loader order.
        val: Validation item ids.
        test: Test item ids.
        owner: Name of the data module, for error messages.
    """

    def __init__(
        self, reader: ItemSource, train: list[str], pool: list[str], val: list[str], test: list[str], owner: str
    ) -> None:
        self.reader, self.owner = reader, owner
        self.train, self.pool, self.val, self.test = train, pool, val, test

    def label(self, ids: list[str], pseudo_labels: dict[str, Any], labels: dict[str, Any] | None = None) -> None:
        """Moves ``ids`` and the keys of ``pseudo_labels`` from the pool to the end of the training set.

        Args:
            ids: Pool ids labelled by the oracle: with ``labels`` if given, else with their ground truth.
            pseudo_labels: Pool id → pseudo label.
            labels: The oracle's label of every id of ``ids`` (a person's), or None.

        Raises:
            PluginError: An id is named twice or is not in the pool (unknown or already labelled), ``labels`` does
                not cover exactly ``ids``, or a label has the wrong shape or values. Nothing is moved then.
        """
        requested = [*ids, *pseudo_labels]
        twice = sorted(i for i, n in Counter(requested).items() if n > 1)
        if twice:
            raise PluginError(f"{self.owner}.label_items: ids named twice: {twice[:10]}.")
        pool = set(self.pool)
        missing = [i for i in requested if i not in pool]
        if missing:
            labelled = set(self.train)
            already = sum(i in labelled for i in missing)
            raise PluginError(
                f"{self.owner}.label_items: ids not in the unlabelled pool: {missing[:10]} "
                f"({already} of them already labelled, the others unknown)."
            )
        if labels is not None and set(labels) != set(ids):
            odd = sorted(set(labels) ^ set(ids))[:10]
            raise PluginError(f"{self.owner}.label_items: labels must be given for exactly the ids; differ in {odd}.")
        checked = {i: self.reader.check_pseudo_label(i, label) for i, label in pseudo_labels.items()}
        supplied = {i: self.reader.check_pseudo_label(i, label) for i, label in (labels or {}).items()}
        self.reader.pseudo_labels.update(checked)
        self.reader.oracle_labels.update(supplied)
        moved = set(requested)
        self.pool[:] = [i for i in self.pool if i not in moved]
        self.train.extend(requested)

    def training_set(self, patches: PatchSampler | None) -> Dataset:
        """The training dataset: the labelled items, cropped to random patches by ``patches`` if given."""
        return ItemDataset(self.reader, self.train, "train", patches)

    def patch_pool(self) -> PatchPool | None:
        """The boxes of a patch pool; None here: items are not boxes (:class:`~alseg.datasets.patch_sets.PatchSets`)."""
        return None

    def pool_cases(self) -> Dataset | None:
        """The whole volumes holding pool boxes, as pool items (no label); None here: items are not boxes."""
        return None

    def new_voxels(self, ids: list[str]) -> int | None:
        """Voxels of ``ids`` no other labelled item covers; None here: items never overlap (all voxels are new)."""
        return None

    def with_foreground(self, ids: list[str]) -> list[bool]:
        """Whether each item's ground truth has foreground (analysis only).

        Raises:
            PluginError: An id is in none of the sets.
        """
        self._check_known(ids, "items_with_foreground")
        return [self.reader.has_foreground(i) for i in ids]

    def without_ground_truth(self, ids: list[str]) -> list[str]:
        """The ids among ``ids`` whose case has no ground truth.

        Raises:
            PluginError: An id is in none of the sets.
        """
        self._check_known(ids, "ids_without_ground_truth")
        return [i for i in ids if not self.reader.has_ground_truth(i)]

    def ground_truth(self, ids: list[str]) -> dict[str, torch.Tensor]:
        """The ground-truth label of each id (the simulated oracle's answer; analysis only).

        Raises:
            PluginError: An id is in none of the sets.
        """
        self._check_known(ids, "ground_truth")
        return {i: self.reader.ground_truth(i) for i in ids}

    def metadata(self, ids: list[str]) -> list[dict[str, Any]]:
        """The ``case_id`` (and ``slice_index``) of training or pool items.

        Raises:
            PluginError: An id is neither a training nor a pool item.
        """
        self._check_known(ids, "item_metadata", (self.train, self.pool))
        return [self.reader.metadata(i) for i in ids]

    def annotation_cost(self, ids: list[str]) -> dict[str, int]:
        """The summed ``annotation_cost`` of the reader over ``ids``.

        Raises:
            PluginError: An id is in none of the sets.
        """
        self._check_known(ids, "annotation_cost")
        total = {"items": 0, "slices": 0, "voxels": 0, "foreground_voxels": 0}
        for item_id in ids:
            for unit, amount in self.reader.annotation_cost(item_id).items():
                total[unit] += amount
        return total

    def _check_known(self, ids: list[str], method: str, sets: tuple[list[str], ...] | None = None) -> None:
        known = set().union(*(sets or (self.train, self.pool, self.val, self.test)))
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise PluginError(f"{self.owner}.{method}: unknown ids {unknown[:10]}.")
