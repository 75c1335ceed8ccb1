"""Tiny, fast test doubles of the three abstractions (like Lightning's ``BoringModel``).

They are real implementations of the contract on in-memory synthetic data, small enough for unit tests of the loop
and of third-party plugins: a 2-layer convolutional model with dropout, a data module of 2D "slices" of a few
"volumes" with a bright disc as foreground in some slices, and a seeded random strategy.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.errors import ConfigError, PluginError
from alseg.core.model import PytorchModel
from alseg.core.query_view import QueryView
from alseg.core.strategy import QueryStrategy


class TinySegmentationModel(PytorchModel):
    """A 2D conv → ReLU → Dropout2d → 1×1 conv network; softmax or sigmoid outputs as the data demands.

    Args:
        hidden_channels: Channels of the hidden layer.
        dropout: Dropout probability of the hidden layer (MC-dropout samples need it > 0).
        **kwargs: Options of :class:`~alseg.core.model.PytorchModel` (learning rate, optimizer).
    """

    def __init__(
        self,
        hidden_channels: int = 8,
        dropout: float = 0.2,
        learning_rate: float = 1e-2,
        **kwargs: Any,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.hidden_channels = hidden_channels
        self.dropout = dropout
        self.encoder: nn.Module | None = None
        self.head: nn.Module | None = None

    def configure_model(self) -> None:
        """Builds the layers once the data module has sized the model."""
        if self.encoder is not None or self.in_channels is None:
            return
        self.encoder = nn.Sequential(
            nn.Conv2d(self.in_channels, self.hidden_channels, 3, padding=1),
            nn.BatchNorm2d(self.hidden_channels),
            nn.ReLU(),
            nn.Dropout2d(self.dropout),
        )
        self.head = nn.Conv2d(self.hidden_channels, self.num_classes, 1)

    def input_dimensionality(self) -> int:
        """Returns 2."""
        return 2

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Returns logits ``[B, C, H, W]``."""
        return self.head(self.encoder(image))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Returns the configured loss of a batch."""
        return self.training_loss(self(batch["image"]), batch)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Logs ``val/loss`` and adds the batch to the per-volume metrics."""
        self.evaluate("val", self(batch["image"]), batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Logs ``test/loss`` and adds the batch to the per-volume metrics."""
        self.evaluate("test", self(batch["image"]), batch)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Returns float32 probabilities ``[B, C, H, W]``."""
        return self.probabilities(self(batch["image"]))

    def embedding_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Returns globally average-pooled hidden features ``[B, hidden_channels]``."""
        return self.encoder(batch["image"]).mean(dim=(2, 3)).float()


class _ItemsDataset(Dataset):
    """A view of the data module's items through a shared, mutable list of ids."""

    def __init__(self, module: InMemoryDataModule, ids: list[str], with_label: bool) -> None:
        self.module, self.ids, self.with_label = module, ids, with_label

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.module.item(self.ids[index], self.with_label)


class InMemoryDataModule(ActiveLearningDataModule):
    """Synthetic 2D slices of a few volumes, ids ``"case_<c>:<s>"``, with ``case_id`` and ``slice_index``.

    Cases are split into training pool, validation and test cases; ``initial_training_set_size`` slices of the
    training cases are labelled at the start by a seeded random choice (the ground truth is not looked at).

    Args:
        num_cases: Number of volumes.
        slices_per_case: Slices per volume.
        image_size: Height and width of a slice.
        in_channels: Image channels.
        multi_label: Two binary channels (disc, disc core) instead of classes background/disc.
        initial_training_set_size: Slices labelled at the start.
        val_cases: Cases held out for validation (0 for no validation set).
        test_cases: Cases held out for testing (0 for no test set).
        seed: Seed of the data and of the initial labelled set (None: the run's seed under ``alseg-train``, else 0).
        **kwargs: Options of :class:`~alseg.core.data_module.ActiveLearningDataModule`.
    """

    def __init__(
        self,
        num_cases: int = 6,
        slices_per_case: int = 6,
        image_size: int = 16,
        in_channels: int = 1,
        multi_label: bool = False,
        initial_training_set_size: int = 4,
        val_cases: int = 1,
        test_cases: int = 1,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        seed = 0 if seed is None else seed
        train_cases = num_cases - val_cases - test_cases
        if train_cases < 1:
            raise ConfigError(f"InMemoryDataModule needs at least one training case; got {num_cases} cases in all.")
        self.is_multi_label = multi_label
        self.images, self.labels = _make_cases(num_cases, slices_per_case, image_size, in_channels, seed)
        ids = [f"case_{c}:{s}" for c in range(num_cases) for s in range(slices_per_case)]
        split = train_cases * slices_per_case
        self.val_ids = ids[split : split + val_cases * slices_per_case]
        self.test_ids = ids[split + val_cases * slices_per_case :]
        candidates = ids[:split]
        if not 0 <= initial_training_set_size <= len(candidates):
            raise ConfigError(
                f"initial_training_set_size must be between 0 and {len(candidates)}. Got {initial_training_set_size}."
            )
        chosen = set(np.random.default_rng(seed).choice(len(candidates), initial_training_set_size, replace=False))
        self.training_ids = [i for n, i in enumerate(candidates) if n in chosen]
        self.pool_ids = [i for n, i in enumerate(candidates) if n not in chosen]
        self.pseudo_labels: dict[str, torch.Tensor] = {}
        self.oracle_labels: dict[str, torch.Tensor] = {}

    def item(self, item_id: str, with_label: bool) -> dict[str, Any]:
        """Returns one item; pool items (``with_label=False``) carry no label."""
        case, index = item_id.split(":")
        c, s = int(case.removeprefix("case_")), int(index)
        item: dict[str, Any] = {
            "image": self.images[c, s],
            "id": item_id,
            "case_id": case,
            "slice_index": s,
        }
        if with_label:
            label = self.pseudo_labels.get(item_id)
            item["pseudo_labeled"] = label is not None
            item["label"] = label if label is not None else self.oracle_labels.get(item_id, self._label(c, s))
        return item

    @staticmethod
    def _position(item_id: str) -> tuple[int, int]:
        case, index = item_id.split(":")
        return int(case.removeprefix("case_")), int(index)

    def _label(self, c: int, s: int) -> torch.Tensor:
        disc = self.labels[c, s]
        if self.is_multi_label:
            return torch.stack([disc > 0, disc > 1]).to(torch.uint8)
        return (disc > 0).long()[None]

    def _create_training_set(self) -> Dataset:
        return _ItemsDataset(self, self.training_ids, with_label=True)

    def _create_validation_set(self) -> Dataset | None:
        return _ItemsDataset(self, self.val_ids, with_label=True) if self.val_ids else None

    def _create_test_set(self) -> Dataset | None:
        return _ItemsDataset(self, self.test_ids, with_label=True) if self.test_ids else None

    def _create_unlabeled_set(self) -> Dataset:
        return _ItemsDataset(self, self.pool_ids, with_label=False)

    def label_items(
        self, ids: list[str], pseudo_labels: dict[str, Any] | None = None, labels: dict[str, Any] | None = None
    ) -> None:
        """Moves ``ids`` (ground truth, or ``labels``) and the keys of ``pseudo_labels`` from the pool to training."""
        pseudo_labels = pseudo_labels or {}
        pool = set(self.pool_ids)
        unknown = [i for i in [*ids, *pseudo_labels] if i not in pool]
        if unknown:
            raise PluginError(f"label_items: ids not in the unlabelled pool: {unknown[:10]}.")
        if labels is not None and set(labels) != set(ids):
            raise PluginError(f"label_items: labels must be given for exactly the ids; got {sorted(labels)[:10]}.")
        for item_id, label in (labels or {}).items():
            self.oracle_labels[item_id] = torch.as_tensor(label)
        for item_id, label in pseudo_labels.items():
            self.pseudo_labels[item_id] = torch.as_tensor(label)
        moved = set(ids) | set(pseudo_labels)
        self.pool_ids[:] = [i for i in self.pool_ids if i not in moved]
        self.training_ids.extend([*ids, *pseudo_labels])

    def unlabeled_ids(self) -> list[str]:
        """Returns the pool's ids without loading items."""
        return list(self.pool_ids)

    def ground_truth(self, ids: list[str]) -> dict[str, torch.Tensor]:
        """Returns each item's ground-truth label (the simulated oracle)."""
        return {i: self._label(*self._position(i)) for i in ids}

    def item_metadata(self, ids: list[str]) -> list[dict[str, Any]]:
        """Returns the ``case_id`` and ``slice_index`` of training or pool items, from their ids."""
        known = {*self.training_ids, *self.pool_ids}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise PluginError(f"item_metadata: ids neither labelled nor in the pool: {unknown[:10]}.")
        return [{"case_id": f"case_{c}", "slice_index": s} for c, s in map(self._position, ids)]

    def items_with_foreground(self, ids: list[str]) -> list[bool]:
        """Returns whether each item's ground truth has disc voxels (analysis only)."""
        return [bool(self._label(*self._position(i)).any()) for i in ids]

    def training_set_num_pseudo_labels(self) -> int:
        """Returns the number of pseudo-labelled training items."""
        return len(self.pseudo_labels)

    def data_fingerprint(self) -> str:
        """Returns a hash of the images, the labels and the split."""
        digest = hashlib.blake2b(digest_size=16)
        for tensor in (self.images, self.labels):
            digest.update(tensor.numpy().tobytes())
        digest.update(json.dumps([self.val_ids, self.test_ids]).encode())
        return digest.hexdigest()

    def id_to_class_names(self) -> dict[int, str]:
        """Returns ``{0: "disc", 1: "core"}`` (multi-label) or ``{0: "background", 1: "disc"}``."""
        return {0: "disc", 1: "core"} if self.is_multi_label else {0: "background", 1: "disc"}

    def multi_label(self) -> bool:
        """Returns the ``multi_label`` option."""
        return self.is_multi_label


def _make_cases(num_cases: int, slices: int, size: int, channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns images ``[N, S, C, H, W]`` (noise plus a brighter disc) and labels ``[N, S, H, W]`` (0, 1 disc, 2 core).

    Every other case has a disc, present in the middle third of its slices, so foreground is rare.
    """
    generator = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    labels = torch.zeros(num_cases, slices, size, size, dtype=torch.long)
    for c in range(0, num_cases, 2):
        cy, cx = torch.randint(size // 4, 3 * size // 4, (2,), generator=generator).tolist()
        distance = ((yy - cy) ** 2 + (xx - cx) ** 2).float().sqrt()
        for s in range(slices // 3, max(slices // 3 + 1, 2 * slices // 3)):
            labels[c, s] = (distance < size / 5).long() + (distance < size / 10).long()
    noise = 0.3 * torch.randn(num_cases, slices, channels, size, size, generator=generator)
    return noise + labels[:, :, None].float(), labels


class SeededRandomStrategy(QueryStrategy):
    """Picks items uniformly at random from the pool with the round's seed (reads no image)."""

    def select_items_to_label(
        self,
        models: PytorchModel | list[PytorchModel],
        data_module: QueryView,
        items_to_label: int,
        *,
        seed: int = 0,
        **kwargs: Any,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Returns ``items_to_label`` ids chosen at random (fewer if the pool is smaller)."""
        ids = sorted(data_module.unlabeled_ids())
        picked = np.random.default_rng(seed).permutation(len(ids))[:items_to_label]
        return [ids[i] for i in picked], None
