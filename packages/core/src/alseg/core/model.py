"""The model abstraction: a LightningModule that outputs per-voxel class probabilities."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch import LightningModule
from torch.optim.lr_scheduler import LRScheduler

from alseg.core.distributed import all_gather_objects
from alseg.core.errors import ConfigError, PluginError
from alseg.core.init_args import RecordsInitArgs
from alseg.core.losses import LOSS_NAMES, LinearSchedule, SegmentationLoss, build_loss
from alseg.core.metric_accumulator import VolumeMetricAccumulator

if TYPE_CHECKING:
    from alseg.core.data_module import ActiveLearningDataModule

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
_SCHEDULERS = {
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "step": torch.optim.lr_scheduler.StepLR,
    "exponential": torch.optim.lr_scheduler.ExponentialLR,
}


class PytorchModel(RecordsInitArgs, LightningModule, ABC):
    """Base class of segmentation models.

    Subclasses implement :meth:`training_step`, :meth:`validation_step`, :meth:`predict_step` and
    :meth:`input_dimensionality`. The base sizes the model from the data module: before the first Trainer stage
    (or on :meth:`bind_data`) it sets :attr:`in_channels`, :attr:`num_classes`, :attr:`multi_label` and
    :attr:`class_names` and then calls Lightning's ``configure_model`` hook, where a subclass builds any layers
    that depend on them (the hook runs at every stage, so guard it to build once).

    The base owns what every segmentation model shares, configured through its constructor: the optimizer and
    learning-rate schedule, the loss (:mod:`alseg.core.losses`, with pseudo-labelled items weighted by
    ``pseudo_label_weight``) and per-volume metrics (:mod:`alseg.core.metrics`), logged as ``val/<name>`` and
    ``test/<name>`` at the end of each epoch. A subclass's steps call :meth:`training_loss` and :meth:`evaluate`
    (or the finer :meth:`compute_loss`, :meth:`probabilities` and :meth:`update_metrics`).

    Args:
        learning_rate: Learning rate of the optimizer.
        optimizer: ``adam``, ``adamw``, ``sgd`` or the dotted path of any ``torch.optim.Optimizer`` class.
        optimizer_kwargs: Further keyword arguments of the optimizer (e.g. ``weight_decay``, ``momentum``).
        lr_scheduler: None, ``cosine`` (``T_max`` defaults to the round's epochs), ``step``, ``exponential`` or the
            dotted path of a ``torch.optim.lr_scheduler.LRScheduler`` class; stepped once per epoch.
        lr_scheduler_kwargs: Keyword arguments of the scheduler.
        loss: One of :data:`alseg.core.losses.LOSS_NAMES`.
        loss_kwargs: Parameters of the loss (e.g. ``include_background``, ``gamma``, ``lambda_dice``).
        pseudo_label_weight: Loss weight of pseudo-labelled items: a constant, or a schedule over active-learning
            rounds (default: linear from 0.9 to 0.1 over 10 rounds, as in the original framework).
        confidence_levels: Thresholds of multi-label metrics (default 0.5; the first gives the unsuffixed keys).
        val_hd95: Compute HD95 in validation (slow on large volumes; off by default).
        test_hd95: Compute HD95 in testing.
    """

    def __init__(
        self,
        learning_rate: float = 1e-3,
        optimizer: str = "adam",
        optimizer_kwargs: dict[str, Any] | None = None,
        lr_scheduler: str | None = None,
        lr_scheduler_kwargs: dict[str, Any] | None = None,
        loss: str = "dice_ce",
        loss_kwargs: dict[str, Any] | None = None,
        pseudo_label_weight: float | LinearSchedule = LinearSchedule(),
        confidence_levels: list[float] | None = None,
        val_hd95: bool = False,
        test_hd95: bool = True,
    ) -> None:
        super().__init__()
        if learning_rate <= 0:
            raise ConfigError(f"The 'learning_rate' option of the model must be > 0. Got {learning_rate}.")
        self.learning_rate = learning_rate
        self.optimizer_class = _resolve_class(optimizer, _OPTIMIZERS, torch.optim.Optimizer, "optimizer")
        self.optimizer_kwargs = dict(optimizer_kwargs or {})
        self.scheduler_class = (
            None if lr_scheduler is None else _resolve_class(lr_scheduler, _SCHEDULERS, LRScheduler, "lr_scheduler")
        )
        self.scheduler_kwargs = dict(lr_scheduler_kwargs or {})
        if loss not in LOSS_NAMES:
            raise ConfigError(f"Unknown loss {loss!r}. Available: {', '.join(LOSS_NAMES)}.")
        self.loss_name = loss
        self.loss_kwargs = dict(loss_kwargs or {})
        self.pseudo_label_weight = pseudo_label_weight
        self.confidence_levels = confidence_levels
        self.hd95_by_stage = {"val": val_hd95, "test": test_hd95}
        self.active_learning_round = 0
        self.in_channels: int | None = None
        self.num_classes: int | None = None
        self.multi_label: bool | None = None
        self.class_names: dict[int, str] = {}
        self.loss_function: SegmentationLoss | None = None
        self._metrics: dict[str, VolumeMetricAccumulator] = {}
        self._losses: dict[str, tuple[float, int]] = {}  # stage -> (sum of batch loss * batch size, items)

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

        Items flagged ``batch["pseudo_labeled"]`` count with ``pseudo_label_weight`` at the current
        :attr:`active_learning_round` (set by the pipeline); the others with weight 1.
        """
        return self.loss_function(logits, batch["label"], self._item_weights(batch))

    def training_loss(self, logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Returns :meth:`compute_loss` of a training batch and logs it as ``train/loss``."""
        loss = self.compute_loss(logits, batch)
        self.log("train/loss", loss, batch_size=len(batch["id"]))
        return loss

    def evaluate(self, stage: str, logits: torch.Tensor, batch: dict[str, Any]) -> None:
        """Adds the loss and probabilities of a ``val`` or ``test`` batch to the stage's epoch.

        At the end of the epoch ``<stage>/loss`` is logged as the mean of the batch losses weighted by batch size,
        over the batches of all ranks (so every rank logs the value of a single process); see :meth:`update_metrics`
        for the metrics.
        """
        items = len(batch["id"])
        total, count = self._losses.get(stage, (0.0, 0))
        self._losses[stage] = (total + self.compute_loss(logits, batch).item() * items, count + items)
        self.update_metrics(stage, self.probabilities(logits), batch)

    def _item_weights(self, batch: dict[str, Any]) -> torch.Tensor | None:
        pseudo = batch.get("pseudo_labeled")
        if pseudo is None or not bool(torch.as_tensor(pseudo).any()):
            return None
        weight = self.pseudo_label_weight
        value = weight(self.active_learning_round) if callable(weight) else float(weight)
        pseudo = torch.as_tensor(pseudo, device=self.device).float()
        return 1.0 - pseudo * (1.0 - value)

    def update_metrics(self, stage: str, probabilities: torch.Tensor, batch: dict[str, Any]) -> None:
        """Adds a batch to the ``val`` or ``test`` metrics (per volume), which are logged at the end of the epoch.

        Uses the batch's ``label``, ``case_id`` (default: ``id``), ``slice_index`` (2D slices are gathered into
        volumes) and ``spacing`` (for distances in mm).
        """
        slices = batch.get("slice_index")
        spacing = batch.get("spacing")
        self._metrics[stage].update(
            probabilities.detach().cpu(),
            batch["label"].detach().cpu(),
            case_ids=batch.get("case_id", batch["id"]),
            slice_indices=None if slices is None else [int(i) for i in slices],
            spacing=None if spacing is None else [tuple(map(float, s)) for s in spacing],
        )

    def on_validation_epoch_end(self) -> None:
        """Logs the validation metrics of the epoch as ``val/<name>``."""
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        """Logs the test metrics as ``test/<name>``."""
        self._log_metrics("test")

    def _log_metrics(self, stage: str) -> None:
        """Logs the stage's loss and metrics over the items of all ranks; a collective call under DDP.

        Every rank gathers all ranks' sufficient statistics (per-case metric state, loss sum and item count) and logs
        the same, single-process values. Lightning's ``sync_dist`` would average per-rank means of the metrics, and
        its batch-size-weighted mean of the loss averages the summed batch sizes over ranks in an integer tensor,
        which truncates unless the item count is a multiple of the world size.
        """
        accumulator = self._metrics.get(stage)
        if accumulator is None:
            return
        shares = all_gather_objects((accumulator.state(), self._losses.pop(stage, (0.0, 0))))
        accumulator.merge([state for state, _ in shares])
        values = accumulator.compute()
        accumulator.reset()
        losses = [loss for _, loss in shares]
        count = sum(items for _, items in losses)
        if count:
            values["loss"] = sum(total for total, _ in losses) / count
        if values:
            self.log_dict({f"{stage}/{key}": value for key, value in values.items()}, sync_dist=False)

    def bind_data(self, data_module: ActiveLearningDataModule) -> None:
        """Sizes the model from a data module and builds its layers (calls Lightning's ``configure_model`` hook)."""
        self.in_channels = data_module.data_channels()
        self.num_classes = data_module.num_classes()
        self.multi_label = data_module.multi_label()
        self.class_names = data_module.id_to_class_names()
        self.loss_function = build_loss(self.loss_name, self.multi_label, **self.loss_kwargs)
        self._metrics = {
            stage: VolumeMetricAccumulator(
                self.class_names,
                self.multi_label,
                thresholds=self.confidence_levels if self.multi_label else None,
                hausdorff=hausdorff,
            )
            for stage, hausdorff in self.hd95_by_stage.items()
        }
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

    def configure_optimizers(self) -> Any:
        """Builds the configured optimizer (and learning-rate scheduler) over all parameters."""
        optimizer = self.optimizer_class(self.parameters(), lr=self.learning_rate, **self.optimizer_kwargs)
        if self.scheduler_class is None:
            return optimizer
        kwargs = dict(self.scheduler_kwargs)
        if self.scheduler_class is torch.optim.lr_scheduler.CosineAnnealingLR:
            kwargs.setdefault("T_max", max(1, self.trainer.max_epochs or 1))
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_class(optimizer, **kwargs)}


def _resolve_class(name: str, known: dict[str, type], base: type, option: str) -> type:
    """Returns ``known[name]`` or the class at dotted path ``name``, which must subclass ``base``."""
    if name in known:
        return known[name]
    module_name, _, class_name = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name, None) if module_name else None
    except ImportError:
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(
            f"Unknown {option} {name!r}. Available: {', '.join(sorted(known))}, "
            f"or the dotted path of a {base.__module__}.{base.__name__} subclass."
        )
    return cls
