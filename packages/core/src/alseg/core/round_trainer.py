"""Lightning glue of one round: a fresh Trainer, best-checkpoint selection, validation and testing."""

from __future__ import annotations

import os
import shutil
import time
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger

from alseg.core import progress
from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.errors import ConfigError
from alseg.core.inference import Placement
from alseg.core.metrics import lower_is_better
from alseg.core.model import PytorchModel
from alseg.core.run_directory import RunDirectory

#: Trainer arguments the pipeline sets itself; giving them in ``trainer_options`` is an error.
OWNED_TRAINER_OPTIONS = frozenset(
    {
        "max_epochs",
        "min_epochs",
        "callbacks",
        "logger",
        "default_root_dir",
        "deterministic",
        "enable_checkpointing",
    }
)
_QUIET_DEFAULTS = {"enable_model_summary": False}


@dataclass(frozen=True)
class RoundResult:
    """What training one round produced.

    Attributes:
        metrics: Validation metrics of the best checkpoint (``val/...``), or the last training metrics if the data
            module has no validation set; with ``test``, also its test metrics (``test/...``).
        best_checkpoint: Path of the best checkpoint, relative to the run directory.
        train_s: Seconds spent in ``Trainer.fit`` (its validation epochs included).
        validate_s: Seconds spent validating the best checkpoint again: 0 when the metrics of the validation that
            chose it during ``fit`` are reused (they are the same weights on the same data), as they usually are.
        test_s: Seconds spent testing it (0 without ``test``).
    """

    metrics: dict[str, float]
    best_checkpoint: str
    train_s: float
    validate_s: float
    test_s: float = 0.0


class RoundTrainer:
    """Trains, selects and evaluates a model for one round at a time.

    Args:
        run_dir: Where checkpoints and logs go.
        criterion: Model-selection metric name without the ``val/`` prefix.
        mode: ``min`` or ``max``; None infers ``min`` for losses and distances.
        early_stopping_patience: Patience of early stopping on the criterion, or None for no early stopping.
        deterministic: Passed to the Trainer.
        trainer_options: Further Trainer arguments. Without ``enable_progress_bar`` the bar follows
            :func:`alseg.core.progress.mode`: on a terminal Lightning's bar with the round
            (:class:`~alseg.core.progress.RoundProgressBar`), else none; ``quiet`` turns it off even when asked for.
        logger: Write Lightning CSV logs of every round's epochs (``logs/csv/round_003/``); experiment trackers
            are not the Trainer's (see :mod:`alseg.core.tracking`).
    """

    def __init__(
        self,
        run_dir: RunDirectory,
        criterion: str = "loss",
        mode: Literal["min", "max"] | None = None,
        early_stopping_patience: int | None = None,
        deterministic: bool = False,
        trainer_options: dict[str, Any] | None = None,
        logger: bool = True,
    ) -> None:
        options = dict(trainer_options or {})
        owned = sorted(OWNED_TRAINER_OPTIONS & options.keys())
        if owned:
            raise ConfigError(
                f"The trainer option(s) {', '.join(owned)} are set by the active-learning pipeline; "
                "use the active_learning section (epochs, early_stopping, …) instead."
            )
        self.run_dir = run_dir
        self.monitor = f"val/{criterion}"
        self.mode = mode or ("min" if lower_is_better(criterion) else "max")
        self.early_stopping_patience = early_stopping_patience
        self.deterministic = deterministic
        self.progress_bar: bool | None = options.pop("enable_progress_bar", None)
        self.trainer_options = {**_QUIET_DEFAULTS, **options}
        self.logger = logger
        self._placement: Placement | None = None

    def placement(self) -> Placement:
        """Returns where this process's Trainer runs a model: its root device and precision (for pool inference)."""
        if self._placement is None:
            trainer = self._trainer(None, max_epochs=1, callbacks=[])
            precision = trainer.precision_plugin
            self._placement = Placement(
                trainer.strategy.root_device, precision.forward_context, precision.convert_input
            )
        return self._placement

    def train(
        self,
        model: PytorchModel,
        data_module: ActiveLearningDataModule,
        round_index: int,
        epochs: int,
        test: bool = False,
    ) -> RoundResult:
        """Fits the model for one round, loads its best weights and validates them (and tests them, with ``test``).

        Testing every round gives learning curves on cases that never chose a checkpoint; the validation metrics
        that did are optimistic. Without a test set, ``test`` adds nothing.
        """
        validate = data_module.has_validation_set()
        monitor = self.monitor if validate else None
        directory = self.run_dir.checkpoint_dir(round_index)
        shutil.rmtree(directory, ignore_errors=True)  # leftovers of an interrupted attempt at this round
        checkpoint = ModelCheckpoint(
            dirpath=directory,
            filename="best",
            monitor=monitor,
            mode=self.mode,
            save_top_k=1,
            save_weights_only=True,
            enable_version_counter=False,
        )
        callbacks: list[Callback] = [checkpoint]
        validations = _ValidationMetrics()
        if validate:
            callbacks[:0] = [_CriterionCheck(self.monitor), validations]
            if self.early_stopping_patience is not None:
                callbacks.append(EarlyStopping(self.monitor, mode=self.mode, patience=self.early_stopping_patience))
        trainer = self._trainer(
            self.run_dir.round_name(round_index), max_epochs=epochs, callbacks=callbacks, stage=f"round {round_index}"
        )
        start = time.perf_counter()
        trainer.fit(model, datamodule=data_module)
        train_s = time.perf_counter() - start
        best = checkpoint.best_model_path or checkpoint.last_model_path
        step = self._load(model, best)
        start = time.perf_counter()
        if not validate:
            metrics = _floats({k: v for k, v in trainer.callback_metrics.items() if k.startswith("train/")})
        elif step in validations.by_step:  # the validation that chose the checkpoint, not a second pass
            metrics = validations.by_step[step]
        else:
            metrics = _floats(trainer.validate(model, datamodule=data_module, verbose=False)[0])
        validate_s = time.perf_counter() - start
        if test and data_module.has_test_set():
            metrics |= _floats(trainer.test(model, datamodule=data_module, verbose=False)[0])
        model.trainer = None  # no handle on the Trainer (and through it the data module) outside its stages
        relative = os.path.relpath(best, self.run_dir.path)
        return RoundResult(metrics, relative, train_s, validate_s, time.perf_counter() - start - validate_s)

    def test(self, model: PytorchModel, data_module: ActiveLearningDataModule) -> dict[str, float]:
        """Tests the model on the data module's test set; returns {} when there is none."""
        if not data_module.has_test_set():
            return {}
        trainer = self._trainer("test", max_epochs=1, callbacks=[], stage="final model")
        metrics = _floats(trainer.test(model, datamodule=data_module, verbose=False)[0])
        model.trainer = None
        return metrics

    def load_weights(self, model: PytorchModel, relative_checkpoint: str) -> None:
        """Loads the weights of a checkpoint recorded in the ledger (relative to the run directory)."""
        path = self.run_dir.path / relative_checkpoint
        if not path.exists():
            raise ConfigError(f"Cannot resume {self.run_dir.path}: checkpoint {path} named in the ledger is missing.")
        self._load(model, str(path))

    @staticmethod
    def _load(model: LightningModule, path: str) -> int | None:
        """Loads a checkpoint's weights into ``model``; returns the global step it was saved at (if recorded)."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(checkpoint["state_dict"])
        return checkpoint.get("global_step")

    def _trainer(
        self, version: str | None, max_epochs: int, callbacks: list[Callback], stage: str | None = None
    ) -> Trainer:
        """Returns a fresh Trainer; with a ``stage`` (e.g. ``round 2``) and bars on, its bar shows the stage."""
        bars = self._shows_bars() and stage is not None
        if bars:
            callbacks = [*callbacks, progress.RoundProgressBar(stage)]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
            return Trainer(
                max_epochs=max_epochs,
                callbacks=callbacks,
                logger=self._loggers(version) if version else False,
                default_root_dir=self.run_dir.path,
                deterministic=self.deterministic,
                enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
                enable_progress_bar=bars,
                **self.trainer_options,
            )

    def _shows_bars(self) -> bool:
        """Bars as asked in the Trainer options, else as the progress mode says; never in quiet mode."""
        current = progress.mode()
        if current == "quiet":
            return False
        return current == "tty" if self.progress_bar is None else self.progress_bar

    def _loggers(self, version: str) -> list[Logger] | bool:
        if not self.logger:
            return False
        # logs of an earlier attempt at this round (or test) are replaced
        shutil.rmtree(self.run_dir.logs_dir / "csv" / version, ignore_errors=True)
        return [CSVLogger(self.run_dir.logs_dir, name="csv", version=version)]


class _CriterionCheck(Callback):
    """Fails early, with the logged names, when the model never logs the model-selection criterion."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.monitor in trainer.callback_metrics:
            return
        logged = sorted(k for k in trainer.callback_metrics if k.startswith("val/"))
        raise ConfigError(
            f"The model_selection_criterion '{self.monitor.removeprefix('val/')}' is not logged by "
            f"{type(pl_module).__name__} (as '{self.monitor}'). Logged: {', '.join(logged) or 'nothing under val/'}."
        )


class _ValidationMetrics(Callback):
    """Keeps the ``val/...`` metrics of every validation during ``fit``, by the global step it ran at.

    A checkpoint records the step it was saved at, so the metrics of the best one need no second validation pass.
    """

    def __init__(self) -> None:
        self.by_step: dict[int, dict[str, float]] = {}

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        self.by_step[trainer.global_step] = _floats(metrics)


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items()}
