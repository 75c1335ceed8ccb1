"""Data modules whose items are listed by an :class:`~alseg.datasets.item_sets.ItemSets`: datasets, oracle, queries.

The volume data modules (slices and volumes of a decode-once cache) and the 2D image-folder modules differ in how
they find, decode and split their data; once they hold an ``ItemSets`` (four shared id lists and a reader that
builds items), the datasets, the oracle and the cheap queries are the same, and live here.
"""

from abc import abstractmethod
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.patch_pool import PatchPool
from alseg.datasets.item_datasets import ItemDataset
from alseg.datasets.item_sets import ItemSets
from alseg.datasets.patches import PatchSampler


class ItemSetDataModule(ActiveLearningDataModule):
    """Datasets, ``label_items`` and the id and cost queries over the id lists of :meth:`_item_sets`.

    Subclasses prepare their data (lazily, once) and return its :class:`~alseg.datasets.item_sets.ItemSets`; they
    still implement ``id_to_class_names``, ``multi_label`` and ``data_fingerprint``.

    Attributes:
        patches: Crops training items to random patches (3D volumes), or ``None`` for whole items.
    """

    patches: PatchSampler | None = None

    @abstractmethod
    def _item_sets(self) -> ItemSets:
        """The prepared item sets (preparing the data on the first call)."""

    def _create_training_set(self) -> Dataset:
        return self._item_sets().training_set(self.patches)

    def _create_validation_set(self) -> Dataset | None:
        sets = self._item_sets()
        return ItemDataset(sets.reader, sets.val, "eval") if sets.val else None

    def _create_test_set(self) -> Dataset | None:
        sets = self._item_sets()
        return ItemDataset(sets.reader, sets.test, "eval") if sets.test else None

    def _create_unlabeled_set(self) -> Dataset:
        sets = self._item_sets()
        return ItemDataset(sets.reader, sets.pool, "pool")

    def label_items(
        self, ids: list[str], pseudo_labels: dict[str, Any] | None = None, labels: dict[str, Any] | None = None
    ) -> None:
        """Moves ``ids`` and the keys of ``pseudo_labels`` from the pool to the end of the training set.

        Args:
            ids: Pool item ids to label with their ground truth (or with ``labels``).
            pseudo_labels: Pool item id → label shaped like the item's ``label`` (``[R, *spatial]``
                0/1 values, or ``[1, *spatial]`` class indices), used instead of the ground truth
                and flagged ``pseudo_labeled``.
            labels: The oracle's label of every id of ``ids`` (a person's, :mod:`alseg.core.oracle`), shaped like
                the item's ``label``; training items carry it instead of the ground truth.

        Raises:
            PluginError: An id is not in the pool (unknown or already labelled) or named twice, ``labels`` does not
                cover exactly ``ids``, or a label has the wrong shape or values. Nothing is moved then.
        """
        self._item_sets().label(list(ids), pseudo_labels or {}, labels)

    def ids_without_ground_truth(self, ids: list[str]) -> list[str]:
        """The ids among ``ids`` whose case has no ground truth (e.g. of ``unlabeled_images``).

        Raises:
            PluginError: An id is not an item of this data module.
        """
        return self._item_sets().without_ground_truth(list(ids))

    def patch_pool(self) -> PatchPool | None:
        """The boxes of the pool and of the labelled set when items are boxes (``annotation_unit: patch``)."""
        return self._item_sets().patch_pool()

    def pool_case_dataloader(self) -> DataLoader:
        """The whole volumes that hold pool boxes, one per batch, without labels (patch items only).

        Raises:
            PluginError: Items are not boxes.
        """
        cases = self._item_sets().pool_cases()
        if cases is None:
            return super().pool_case_dataloader()
        return DataLoader(cases, 1, num_workers=self.num_workers, pin_memory=self.pin_memory)

    def unlabeled_ids(self) -> list[str]:
        """The pool's ids in loader order, without loading items."""
        return list(self._item_sets().pool)

    def labeled_ids(self) -> list[str]:
        """The training set's ids in loader order, without loading items."""
        return list(self._item_sets().train)

    def annotation_cost(self, ids: list[str]) -> dict[str, int]:
        """Items, slices (a volume counts its slices, a 2D item 1), voxels and ground-truth foreground voxels.

        Raises:
            PluginError: An id is not an item of this data module.
        """
        return self._item_sets().annotation_cost(ids)

    def training_set_num_pseudo_labels(self) -> int:
        """The number of pseudo-labelled training items."""
        return len(self._item_sets().reader.pseudo_labels)

    def items_with_foreground(self, ids: list[str]) -> list[bool]:
        """For analysis only: whether each item's ground truth has foreground (from data already prepared).

        Raises:
            PluginError: An id is not an item of this data module.
        """
        return self._item_sets().with_foreground(ids)

    def ground_truth(self, ids: list[str]) -> dict[str, torch.Tensor]:
        """The ground-truth label of each id, shaped like a training item's ``label`` (the simulated oracle).

        Raises:
            PluginError: An id is not an item of this data module.
        """
        return self._item_sets().ground_truth(ids)

    def item_metadata(self, ids: list[str]) -> list[dict[str, Any]]:
        """The ``case_id`` (and ``slice_index``) of training or pool items, from their ids; loads nothing.

        Raises:
            PluginError: An id is neither a training nor a pool item.
        """
        return self._item_sets().metadata(ids)
