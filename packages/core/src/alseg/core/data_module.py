"""The data-module abstraction: a labelled training set, an unlabelled pool and the oracle.

Items are dictionaries. Every item has ``"image"`` (``float32 [C, *spatial]``) and ``"id"`` (a string that
identifies the item for the whole run, e.g. ``"BraTS2021_00042:77"`` for a slice and ``"BraTS2021_00042"`` for a
volume — never a position in a dataset). Items of the training, validation and test sets also have ``"label"``
(``[1, *spatial]`` class indices for single-label data, ``[C, *spatial]`` binary maps for multi-label data). A
training label may be partial: voxels nobody annotated hold :data:`~alseg.core.partial_labels.UNKNOWN`, and the
losses leave them out.
Items of the unlabelled pool never carry a label: a strategy cannot read the answer it is choosing to ask for.

Optional metadata that strategies and metrics may use, when the data module provides it:

* ``"case_id"`` (str): the volume an item belongs to (equal to ``"id"`` for volume items).
* ``"slice_index"`` (int): the index of a 2D slice within its volume.
* ``"spacing"`` (float tensor ``[3]``): voxel spacing in mm of the item's volume, for distances in mm — for a volume
  its three axes; for a 2D slice its two in-plane axes, then the axis it was sliced along (the spacing of the volume
  that the slices of a case are stacked back into for per-volume metrics).
* ``"weight"`` (float): training weight of the item (pseudo-labelled items may count less).
* ``"pseudo_labeled"`` (bool): whether a training item's label is a pseudo label.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from alseg.core import distributed
from alseg.core.errors import ConfigError, PluginError
from alseg.core.init_args import RecordsInitArgs
from alseg.core.patch_pool import PatchPool


class ActiveLearningDataModule(RecordsInitArgs, LightningDataModule, ABC):
    """Base class of data modules for active learning.

    Subclasses create the four datasets and implement the oracle (:meth:`label_items`); the base provides the data
    loaders and the size queries. The datasets are created once, on the first :meth:`setup`, and must share state
    with the data module so that :meth:`label_items` is reflected in :meth:`train_dataloader` and
    :meth:`unlabeled_dataloader` afterwards.

    Args:
        batch_size: Batch size of the training, validation and test loaders.
        pool_batch_size: Batch size of the loader over the unlabelled pool (defaults to ``batch_size``).
        num_workers: Worker processes per data loader.
        pin_memory: Passed to every data loader.
        items_per_epoch: Training items per epoch, drawn at random with replacement from the labelled set (as
            nnU-Net's fixed iterations per epoch), so that every round, and every annotation unit, trains on as many
            items; None (default): every labelled item once per epoch, shuffled.
    """

    def __init__(
        self,
        batch_size: int = 4,
        pool_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        items_per_epoch: int | None = None,
    ) -> None:
        super().__init__()
        sizes = (("batch_size", batch_size), ("pool_batch_size", pool_batch_size), ("items_per_epoch", items_per_epoch))
        for name, value in sizes:
            if value is not None and value < 1:
                raise ConfigError(f"The '{name}' option of the data module must be >= 1. Got {value}.")
        if num_workers < 0:
            raise ConfigError(f"The 'num_workers' option of the data module must be >= 0. Got {num_workers}.")
        self.batch_size = batch_size
        self.pool_batch_size = pool_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.items_per_epoch = items_per_epoch
        self._datasets: dict[str, Dataset | None] | None = None

    # ----------------------------------------------------------------------------------------------- extension points
    @abstractmethod
    def _create_training_set(self) -> Dataset:
        """Returns the dataset of labelled training items (the initial labelled set at first)."""

    @abstractmethod
    def _create_validation_set(self) -> Dataset | None:
        """Returns the validation dataset, or None if there is none."""

    @abstractmethod
    def _create_test_set(self) -> Dataset | None:
        """Returns the test dataset, or None if there is none."""

    @abstractmethod
    def _create_unlabeled_set(self) -> Dataset:
        """Returns the dataset of the unlabelled pool (items without ``"label"``)."""

    @abstractmethod
    def label_items(
        self, ids: list[str], pseudo_labels: dict[str, Any] | None = None, labels: dict[str, Any] | None = None
    ) -> None:
        """Moves items from the unlabelled pool to the training set.

        Without ``labels`` the module labels ``ids`` with its own ground truth (the simulated oracle). An oracle that
        asks a person (:mod:`alseg.core.oracle`) passes the labels it got as ``labels``: the training items of
        ``ids`` then carry those (oracle labels, counted in the budget, not pseudo-labelled). A module that does not
        take ``labels`` works with the simulated oracle only; the kit's ``check_data_module_oracle_labels`` checks it.

        Args:
            ids: Ids of pool items to label (with their ground truth, or with ``labels``).
            pseudo_labels: Optional labels keyed by id, used instead of the ground truth for those ids; such items
                are marked as pseudo-labelled (``"pseudo_labeled": True``).
            labels: The oracle's label of every id of ``ids`` (and of no other id), shaped like a training item's
                ``label``; None: the module's ground truth.

        Raises:
            PluginError: An id is not in the unlabelled pool (the message names it), or ``labels`` does not cover
                exactly ``ids`` or holds a badly shaped label. Nothing is moved then.
        """

    @abstractmethod
    def id_to_class_names(self) -> dict[int, str]:
        """Returns the class (single-label) or channel (multi-label) names by index."""

    @abstractmethod
    def multi_label(self) -> bool:
        """Returns True if labels are independent binary channels (sigmoid outputs), False for softmax classes."""

    # --------------------------------------------------------------------------------------------- provided queries
    def setup(self, stage: str | None = None) -> None:
        """Creates the datasets on the first call; later calls (every Lightning stage) keep them."""
        if self._datasets is None:
            self._datasets = {
                "train": self._create_training_set(),
                "val": self._create_validation_set(),
                "test": self._create_test_set(),
                "pool": self._create_unlabeled_set(),
            }

    def _dataset(self, name: str) -> Dataset | None:
        self.setup()
        assert self._datasets is not None
        return self._datasets[name]

    def unlabeled_ids(self) -> list[str]:
        """Returns the ids of the unlabelled pool.

        The default reads every pool item; subclasses that know their ids should override it with a cheap version.
        """
        pool = self._dataset("pool")
        return [pool[i]["id"] for i in range(len(pool))]  # type: ignore[arg-type]

    def labeled_ids(self) -> list[str]:
        """Returns the ids of the training set, in loader order (labelled and pseudo-labelled items).

        The default reads every training item; subclasses that know their ids should override it.
        """
        train = self._dataset("train")
        return [train[i]["id"] for i in range(len(train))]  # type: ignore[arg-type]

    def training_set_size(self) -> int:
        """Returns the number of labelled training items."""
        return len(self._dataset("train"))  # type: ignore[arg-type]

    def unlabeled_set_size(self) -> int:
        """Returns the number of items in the unlabelled pool."""
        return len(self._dataset("pool"))  # type: ignore[arg-type]

    def training_set_num_pseudo_labels(self) -> int:
        """Returns how many training items carry pseudo labels; override when ``label_items`` accepts them."""
        return 0

    def data_fingerprint(self) -> str | None:
        """Returns a hash of the data the run depends on (images, labels, split), or None if unknown.

        The pipeline records it when a run starts and refuses to resume a run whose data changed since.
        """
        return None

    def items_with_foreground(self, ids: list[str]) -> list[bool] | None:
        """For analysis only: whether each item's ground truth contains foreground, or None if unknown.

        The pipeline records it for the ids a strategy selected, so that reports can show how often a strategy found
        foreground. Strategies never see it: they get a :class:`~alseg.core.query_view.QueryView`, whose
        ``ground_truth_foreground`` asks this method for oracle-informed baselines and is recorded in the ledger.
        """
        return None

    def ground_truth(self, ids: list[str]) -> dict[str, Tensor] | None:
        """The simulated oracle's answer: each item's ground-truth label, without labelling it; None if unknown.

        Labels are shaped like a training item's ``label``. The pipeline uses them to derive pseudo labels from the
        oracle's labels of a selection (:mod:`alseg.core.derived_labels`) and to record how well every pseudo label
        matches the ground truth of the same item. Strategies never see it. The default knows none.

        Raises:
            PluginError: An id is not an item of this data module.
        """
        return None

    def ids_without_ground_truth(self, ids: list[str]) -> list[str]:
        """The ids among ``ids`` whose case has no ground truth (data a person still has to label); default none.

        The simulated oracle refuses to label them (:class:`~alseg.core.oracle.SimulatedOracle`).
        """
        return []

    def item_metadata(self, ids: list[str]) -> list[dict[str, Any]]:
        """The metadata of training or pool items: ``case_id`` and, for slices, ``slice_index`` (module docstring).

        An item without ``case_id`` is its own case. The default reads the items (images included); data modules
        that know their items should override it.

        Raises:
            PluginError: An id is neither a training nor a pool item.
        """
        wanted, found = set(ids), {}
        for name in ("train", "pool"):
            dataset = self._dataset(name)
            for index in range(len(dataset)):  # type: ignore[arg-type]
                item = dataset[index]  # type: ignore[index]
                if item["id"] in wanted:
                    found[item["id"]] = {"case_id": item.get("case_id", item["id"])}
                    found[item["id"]] |= {k: item[k] for k in ("slice_index",) if k in item}
        unknown = [i for i in ids if i not in found]
        if unknown:
            raise PluginError(
                f"{type(self).__name__}.item_metadata: ids neither labelled nor in the pool: {unknown[:10]}."
            )
        return [found[i] for i in ids]

    def annotation_cost(self, ids: list[str]) -> dict[str, int]:
        """Returns what labelling these items costs, in every unit the data module can count.

        Units: ``items`` (always), and where the data allow ``slices`` (2D slices to annotate; a volume counts its
        slices along the slicing axis), ``voxels`` and ``foreground_voxels`` (voxels of the ground truth that hold
        foreground: the part of an item an annotator has to draw). The pipeline records the cost of the oracle's
        labels in the ledger, so that learning curves can be drawn against each unit. The default counts items.

        Raises:
            PluginError: An id is not an item of this data module.
        """
        return {"items": len(ids)}

    def patch_pool(self) -> PatchPool | None:
        """The boxes of a pool of patch items (geometry only, never a label), or None when items are not boxes.

        A data module whose items are boxes inside volumes (``annotation_unit: patch``) returns a
        :class:`~alseg.core.patch_pool.PatchPool`; patch-aware strategies then score the boxes on whole volumes
        (:meth:`pool_case_dataloader`) and keep its overlap rule. The default has none.
        """
        return None

    def pool_case_dataloader(self) -> DataLoader:
        """The whole volumes that hold pool boxes, one per batch: ``image`` ``[1, C, *spatial]``, ``case_id``; no label.

        Only data modules with a :meth:`patch_pool` provide it.

        Raises:
            PluginError: The data module's items are not boxes.
        """
        raise PluginError(f"{type(self).__name__} has no patch pool, so no pool_case_dataloader().")

    def has_validation_set(self) -> bool:
        """Returns True if the module provides a validation set."""
        return self._dataset("val") is not None

    def has_test_set(self) -> bool:
        """Returns True if the module provides a test set."""
        return self._dataset("test") is not None

    def data_channels(self) -> int:
        """Returns the number of input channels, read from the first training or pool item (overridable)."""
        for name in ("train", "pool"):
            dataset = self._dataset(name)
            if dataset is not None and len(dataset) > 0:  # type: ignore[arg-type]
                return int(dataset[0]["image"].shape[0])
        raise PluginError(
            f"{type(self).__name__}.data_channels(): the training set and the pool are both empty; "
            "override data_channels() to state the number of input channels."
        )

    def num_classes(self) -> int:
        """Returns the number of output channels a model needs (from :meth:`id_to_class_names`)."""
        return len(self.id_to_class_names())

    # -------------------------------------------------------------------------------------------------- data loaders
    def _loader(self, name: str, batch_size: int, shuffle: bool) -> DataLoader:
        """Returns a loader over one of the datasets.

        Under a distributed run, the validation and test sets are dealt out to the ranks without the padding
        duplicates of Lightning's default sampler (every item is evaluated exactly once), so that metrics gathered
        over the ranks equal those of a single process. The shuffled training loader draws ``items_per_epoch``
        items with replacement when that is set (under DDP, Lightning deals them out to the ranks).
        """
        dataset = self._dataset(name)
        if dataset is None:
            raise PluginError(f"{type(self).__name__} has no {name} set.")
        sampler: Sampler | None = None
        if name in ("val", "test") and distributed.is_distributed():
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        elif shuffle and self.items_per_epoch is not None and len(dataset) > 0:  # type: ignore[arg-type]
            sampler, shuffle = RandomSampler(dataset, replacement=True, num_samples=self.items_per_epoch), False
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        """Returns a shuffled loader over the labelled training items (``items_per_epoch`` of them, if set)."""
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Returns a loader over the validation set."""
        return self._loader("val", self.batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Returns a loader over the test set."""
        return self._loader("test", self.batch_size, shuffle=False)

    def labeled_dataloader(self) -> DataLoader:
        """Returns the training items in a fixed order, with ``pool_batch_size`` (e.g. for their embeddings)."""
        return self._loader("train", self.pool_batch_size, shuffle=False)

    def unlabeled_dataloader(self) -> DataLoader:
        """Returns a loader over the unlabelled pool in a fixed order, with ``pool_batch_size``."""
        return self._loader("pool", self.pool_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Returns :meth:`unlabeled_dataloader` (what Lightning's ``Trainer.predict`` runs over)."""
        return self.unlabeled_dataloader()
