"""What a strategy sees of the data module: the documented query surface, and nothing that reaches a pool label.

The pipeline hands every strategy a :class:`QueryView` as its ``data_module`` argument. The view streams the pool
(images and metadata, never labels), tells sizes, ids and class names, describes patch pools (boxes and whole pool
volumes, geometry and images only), and lets the strategy add values to its round's ledger entry. Ground truth of
pool items is available to oracle-informed baselines through one explicit call,
:meth:`QueryView.ground_truth_foreground`, and the ledger records every id it revealed.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader, Dataset

from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.errors import PluginError
from alseg.core.patch_pool import PatchPool

#: The query surface: the data-module methods a strategy may call (besides the view's own methods).
QUERY_SURFACE = (
    "unlabeled_dataloader",
    "labeled_dataloader",
    "unlabeled_ids",
    "labeled_ids",
    "unlabeled_set_size",
    "training_set_size",
    "item_metadata",
    "id_to_class_names",
    "multi_label",
    "num_classes",
    "data_channels",
    "patch_pool",
    "pool_case_dataloader",
)


class QueryView:
    """A strategy's view of a data module for one query.

    Args:
        data_module: The data module queried.
        strategy_name: The strategy's name, for messages.
    """

    def __init__(self, data_module: ActiveLearningDataModule, strategy_name: str = "the strategy") -> None:
        self._module = data_module
        self._strategy_name = strategy_name
        self.notes: dict[str, Any] = {}
        self.revealed_ids: list[str] = []

    @property
    def pool_batch_size(self) -> int:
        """The batch size of the pool loader."""
        return self._module.pool_batch_size

    def unlabeled_dataloader(self) -> DataLoader:
        """Returns the data module's loader over the pool, in a fixed order; its items never carry a label."""
        return _rewrap(self._module.unlabeled_dataloader(), pool=True)

    def labeled_dataloader(self) -> DataLoader:
        """Returns the labelled training items in a fixed order (e.g. for their embeddings)."""
        return _rewrap(self._module.labeled_dataloader(), pool=False)

    def unlabeled_ids(self) -> list[str]:
        """Returns the ids of the pool."""
        return self._module.unlabeled_ids()

    def labeled_ids(self) -> list[str]:
        """Returns the ids of the labelled training items (ids only, never their labels)."""
        return self._module.labeled_ids()

    def unlabeled_set_size(self) -> int:
        """Returns the number of pool items."""
        return self._module.unlabeled_set_size()

    def training_set_size(self) -> int:
        """Returns the number of labelled training items (oracle and pseudo labels)."""
        return self._module.training_set_size()

    def item_metadata(self, ids: list[str]) -> list[dict[str, Any]]:
        """Returns the metadata of training or pool items (``case_id``, and ``slice_index`` for slices), no labels."""
        return self._module.item_metadata(ids)

    def id_to_class_names(self) -> dict[int, str]:
        """Returns the class (or multi-label channel) names by index."""
        return self._module.id_to_class_names()

    def multi_label(self) -> bool:
        """Returns True for independent sigmoid channels, False for softmax classes."""
        return self._module.multi_label()

    def num_classes(self) -> int:
        """Returns the number of output channels."""
        return self._module.num_classes()

    def data_channels(self) -> int:
        """Returns the number of input channels."""
        return self._module.data_channels()

    def patch_pool(self) -> PatchPool | None:
        """Returns the boxes of a patch pool and of the labelled set (geometry only), or None if items are not boxes."""
        return self._module.patch_pool()

    def pool_case_dataloader(self) -> DataLoader:
        """Returns the whole volumes that hold pool boxes, one per batch, images only (never a label).

        Raises:
            PluginError: The data module's items are not boxes (:meth:`patch_pool` is None).
        """
        return _rewrap(self._module.pool_case_dataloader(), pool=True)

    def record(self, key: str, value: Any) -> None:
        """Adds a JSON-serialisable value to this round's ledger entry, under ``strategy_notes[key]``.

        For example the number of picks that were decided by a tie-break (``tied_picks``).
        """
        self.notes[key] = value

    def ground_truth_foreground(self, ids: list[str]) -> list[bool]:
        """For oracle-informed baselines only: whether each pool item's ground truth contains foreground.

        This asks the oracle. Every id passed is recorded in the round's ledger entry (``ground_truth_revealed``),
        so that reports can tell such baselines apart from strategies that use only the model and the images.

        Raises:
            PluginError: An id is not in the pool, or the data module cannot tell.
        """
        unknown = sorted(set(ids) - set(self._module.unlabeled_ids()))
        if unknown:
            raise PluginError(
                f"Strategy {self._strategy_name} asked for the ground truth of ids that are not in the pool: "
                f"{unknown[:10]}."
            )
        flags = self._module.items_with_foreground(list(ids))
        if flags is None:
            raise PluginError(
                f"Strategy {self._strategy_name} asked for ground truth, but {type(self._module).__name__} does not "
                "implement items_with_foreground(ids)."
            )
        seen = set(self.revealed_ids)  # a set: the whole pool may be asked about, thousands of ids
        self.revealed_ids.extend(i for i in dict.fromkeys(ids) if i not in seen)
        return list(map(bool, flags))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        offered = sorted((*QUERY_SURFACE, "pool_batch_size", "record", "ground_truth_foreground"))
        raise PluginError(
            f"Strategy {self._strategy_name} used data_module.{name}, which is not part of the query surface of a "
            f"strategy (it may reach the labels the strategy is choosing to ask for). Available: {', '.join(offered)}."
        )


class _Items(Dataset):
    """A dataset's items without a handle on the dataset (and its readers) behind them.

    Args:
        dataset: The data module's dataset.
        pool: The items are pool items: one that carries a label is an error.
    """

    def __init__(self, dataset: Dataset, pool: bool) -> None:
        self._dataset = dataset
        self._pool = pool

    def __len__(self) -> int:
        return len(self._dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self._dataset[index]
        if self._pool and "label" in item:
            raise PluginError(f"Pool item {item.get('id')!r} carries a label; pool items must not.")
        return item


def _rewrap(loader: DataLoader, pool: bool) -> DataLoader:
    """Returns ``loader`` with the same batching over :class:`_Items` of its dataset."""
    batching: dict[str, Any] = (
        {"batch_sampler": loader.batch_sampler}
        if loader.batch_size is None
        else {"batch_size": loader.batch_size, "sampler": loader.sampler, "drop_last": loader.drop_last}
    )
    return DataLoader(
        _Items(loader.dataset, pool),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        worker_init_fn=loader.worker_init_fn,
        **batching,
    )
