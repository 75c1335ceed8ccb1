"""The model abstraction: a LightningModule that outputs per-voxel class probabilities."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch import LightningModule

from alseg.core.errors import ConfigError, PluginError

if TYPE_CHECKING:
    from alseg.core.data_module import ActiveLearningDataModule

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


class PytorchModel(LightningModule, ABC):
    """Base class of segmentation models.

    Subclasses implement :meth:`training_step`, :meth:`validation_step`, :meth:`predict_step` and
    :meth:`input_dimensionality`. The base sizes the model from the data module: before the first Trainer stage
    (or on :meth:`bind_data`) it sets :attr:`in_channels`, :attr:`num_classes`, :attr:`multi_label` and
    :attr:`class_names` and then calls Lightning's :meth:`configure_model` hook, where a subclass builds any layers
    that depend on them (the hook runs at every stage, so guard it to build once).

    Args:
        learning_rate: Learning rate of the optimizer.
        optimizer: ``adam``, ``adamw``, ``sgd`` or the dotted path of any ``torch.optim.Optimizer`` class.
        optimizer_kwargs: Further keyword arguments of the optimizer (e.g. ``weight_decay``, ``momentum``).
    """

    def __init__(
        self,
        learning_rate: float = 1e-3,
        optimizer: str = "adam",
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if learning_rate <= 0:
            raise ConfigError(f"The 'learning_rate' option of the model must be > 0. Got {learning_rate}.")
        self.learning_rate = learning_rate
        self.optimizer_class = _optimizer_class(optimizer)
        self.optimizer_kwargs = dict(optimizer_kwargs or {})
        self.in_channels: int | None = None
        self.num_classes: int | None = None
        self.multi_label: bool | None = None
        self.class_names: dict[int, str] = {}

    # ----------------------------------------------------------------------------------------------- extension points
    @abstractmethod
    def input_dimensionality(self) -> int:
        """Returns the number of spatial dimensions of the model's input items (2 or 3)."""

    @abstractmethod
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Returns the training loss of one batch."""

    @abstractmethod
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Evaluates one validation batch; logs ``val/loss`` and metrics as ``val/<name>``."""

    @abstractmethod
    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Returns per-voxel probabilities ``float32 [B, C, *spatial]`` of a batch.

        Softmax over classes for single-label data (summing to 1 over ``C``), independent sigmoids for multi-label
        data (each in [0, 1]). Must not read ``batch["label"]``: pool batches have none.
        """

    def embedding_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Returns one feature vector per item, ``float32 [B, D]`` (needed by diversity strategies)."""
        raise PluginError(
            f"{type(self).__name__} does not implement embedding_step(batch, batch_idx), which feature-based "
            "strategies (e.g. coreset) need. Implement it or choose another strategy."
        )

    # --------------------------------------------------------------------------------------------- provided behaviour
    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Turns logits ``[B, C, *spatial]`` into float32 probabilities: sigmoid if multi-label, else softmax."""
        logits = logits.float()
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)

    def compute_loss(self, logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Returns the configured loss of logits ``[B, C, *spatial]`` against ``batch["label"]``.

        Items are weighted by ``batch["weight"]`` when present (pseudo-labelled items may count less).
        """
        return self.loss_function(logits, batch["label"], batch.get("weight"))

    def update_metrics(self, stage: str, probabilities: torch.Tensor, batch: dict[str, Any]) -> None:
        """Adds a batch's probabilities to the ``val`` or ``test`` metrics, logged at the end of the epoch."""
        self._metrics(stage).update(probabilities, batch)

    def bind_data(self, data_module: ActiveLearningDataModule) -> None:
        """Sizes the model from a data module and builds its layers (calls :meth:`configure_model`)."""
        self.in_channels = data_module.data_channels()
        self.num_classes = data_module.num_classes()
        self.multi_label = data_module.multi_label()
        self.class_names = data_module.id_to_class_names()
        self.configure_model()

    def setup(self, stage: str) -> None:
        """Lightning hook: binds the Trainer's data module once, if there is one."""
        data_module = self.trainer.datamodule
        if self.num_classes is None and data_module is not None:
            self.bind_data(data_module)

    def reset_parameters(self) -> None:
        """Re-initialises all weights (every submodule that has ``reset_parameters``) from torch's global RNG."""
        for module in self.modules():
            if module is not self and callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Builds the configured optimizer over all parameters."""
        return self.optimizer_class(self.parameters(), lr=self.learning_rate, **self.optimizer_kwargs)


def _optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    if name in _OPTIMIZERS:
        return _OPTIMIZERS[name]
    module_name, _, class_name = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name) if module_name else None
    except ImportError:
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ConfigError(
            f"Unknown optimizer {name!r}. Available: {', '.join(sorted(_OPTIMIZERS))}, "
            "or the dotted path of a torch.optim.Optimizer subclass."
        )
    return cls
