"""Experiment tracking: one active-learning run is one tracked run, with the round as its step axis.

The ``logger`` option of the pipeline names where logs go: ``csv`` (Lightning CSV logs of every round's epochs, the
default), ``tensorboard``, ``wandb`` and ``mlflow`` (Lightning's ``TensorBoardLogger``, ``WandbLogger`` and
``MLFlowLogger``, from the extras ``alseg-core[tensorboard]``, ``[wandb]``, ``[mlflow]``), or a list of them. Only the
writing process (rank 0) tracks. After every round it logs the round's ledger metrics (:func:`round_metrics`) at
step = round; per-epoch curves stay in the CSV logs of each round, because every round is a fresh Trainer whose
epochs and steps start again at 0, and a tracked run has one step axis.

Where the trackers write, by default all under ``<run>/logs/``:

- TensorBoard: event files in ``tensorboard/`` (a resumed run adds event files to the same folder).
- Weights & Biases: offline unless ``WANDB_MODE`` says otherwise, in ``wandb/``. W&B cannot resume an offline run:
  every offline start is a new offline folder with the same run id, into which the whole ledger is logged again, so
  the newest folder (``wandb/latest-run``) holds the complete run for ``wandb sync``. Online, a resumed run continues
  the same W&B run (``id``, ``resume="allow"``).
- MLflow: a local SQLite store ``mlflow/mlflow.db`` with artifacts in ``mlflow/artifacts`` (MLflow 3 refuses its
  file store), or the ``tracking_uri`` option, or ``MLFLOW_TRACKING_URI``. A resumed run continues the same MLflow run.

``logs/tracking.json`` keeps each tracker's run id, store and how many rounds it holds: a restarted run logs the
rounds it is missing from the ledger (so a tracker added on resume gets the whole history), and a new store gets a
new tracked run with the whole history. The resolved configuration goes in as hyperparameters and, with the ledger
and the summary, as artifacts (W&B, MLflow): ``config.yaml`` at the start, all three at the end. The tracker
adapters are in :mod:`alseg.core.trackers`.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import yaml

from alseg.core.errors import ConfigError
from alseg.core.oracle import LabelsPending
from alseg.core.round_record import RoundRecord
from alseg.core.run_directory import RunDirectory, atomic_write_text
from alseg.core.trackers import TRACKED_RUNS, TrackingOptions

__all__ = ["LOGGER_NAMES", "TRACKER_MODULES", "Tracker", "TrackingOptions", "resolve_loggers", "round_metrics", "track"]

#: Trackers and the module each one needs (installed by the alseg-core extra of the same name).
TRACKER_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
#: Every name the ``logger`` option accepts.
LOGGER_NAMES = ("csv", *TRACKER_MODULES)


def resolve_loggers(logger: bool | str | Sequence[str]) -> tuple[str, ...]:
    """Returns the logger names of the ``logger`` option, in order and without repeats.

    ``True`` means ``csv`` and ``False`` none.

    Raises:
        ConfigError: A name is unknown, or a tracker's package is not installed (naming the extra to install).
    """
    if isinstance(logger, bool):
        return ("csv",) if logger else ()
    names = [logger] if isinstance(logger, str) else list(logger)
    for name in names:
        if name not in LOGGER_NAMES:
            raise ConfigError(
                f"Unknown logger {name!r} in the 'logger' option of the active_learning section. "
                f"Available: {', '.join(sorted(LOGGER_NAMES))} (a name or a list of them; true = csv, false = none)."
            )
        module = TRACKER_MODULES.get(name)
        if module is not None and importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"The {name} logger needs the {module} package, which is not installed. "
                f"Install it with: pip install 'alseg-core[{name}]'."
            )
    return tuple(dict.fromkeys(names))


def round_metrics(record: RoundRecord) -> dict[str, float]:
    """Returns what the trackers log of one round: its metrics, labelling budget, annotation cost and timing."""
    metrics = {
        **record.metrics,
        "round": record.round,
        "num_labeled": record.num_labeled,
        "num_unlabeled": record.num_unlabeled,
        "num_pseudo_labeled": record.num_pseudo_labeled,
        "epochs": record.epochs,
        "wall_time_s": record.wall_time_s,
        **{f"annotation_cost/{unit}": amount for unit, amount in record.annotation_cost.items()},
        **{f"timing_s/{phase}": seconds for phase, seconds in record.timing_s.items()},
    }
    return {key: float(value) for key, value in metrics.items()}


class Tracker:
    """The tracked runs of one active-learning run (none for an empty ``names``, e.g. on ranks other than 0).

    Args:
        run_dir: The run directory.
        names: Logger names (:func:`resolve_loggers`); ``csv`` is the Trainer's business and ignored here.
        options: Where trackers put the run.
    """

    def __init__(self, run_dir: RunDirectory, names: Sequence[str], options: TrackingOptions) -> None:
        self.run_dir = run_dir
        self.options = options
        self.state: dict[str, dict[str, Any]] = (
            json.loads(run_dir.tracking_path.read_text()) if names and run_dir.tracking_path.exists() else {}
        )
        self.trackers = {name: TRACKED_RUNS[name](run_dir, options) for name in names if name in TRACKED_RUNS}

    def start(self, records: Sequence[RoundRecord]) -> None:
        """Opens every tracked run (new or continued), logs the config and the ledger rounds it does not hold."""
        for name, tracker in self.trackers.items():
            tracker.open(self.state.get(name, {}))
            if not tracker.continued:
                tracker.logger.log_hyperparams(yaml.safe_load(self.run_dir.config_path.read_text()))
            tracker.log_files([self.run_dir.config_path])
        self._save_state()
        for record in records:
            self.log_round(record)

    def log_round(self, record: RoundRecord) -> None:
        """Logs a completed round at step = round in every tracked run that does not hold it yet."""
        for tracker in self.trackers.values():
            if record.round >= tracker.logged_rounds:
                tracker.logger.log_metrics(round_metrics(record), step=record.round)
                tracker.logged_rounds = record.round + 1
        self._save_state()

    def finish(self, summary: dict[str, Any], last: RoundRecord) -> None:
        """Logs the final test metrics (at the last round, if its ledger line lacks them) and the run's files."""
        files = [self.run_dir.config_path, self.run_dir.ledger_path, self.run_dir.summary_path]
        tested = {key: float(value) for key, value in summary["test_metrics"].items() if key not in last.metrics}
        for tracker in self.trackers.values():
            if tested and tracker.summary_round != last.round:
                tracker.logger.log_metrics(tested, step=last.round)
                tracker.summary_round = last.round
            tracker.log_files([path for path in files if path.exists()])
        self._save_state()

    def close(self, failed: bool) -> None:
        """Ends every tracked run that was opened (as failed, with ``failed``)."""
        for tracker in self.trackers.values():
            if tracker.opened:
                tracker.close(failed)

    def _save_state(self) -> None:
        if self.trackers:
            self.state |= {name: tracker.state() for name, tracker in self.trackers.items()}
            atomic_write_text(self.run_dir.tracking_path, json.dumps(self.state, indent=2) + "\n")


@contextmanager
def track(
    run_dir: RunDirectory, names: Sequence[str], records: Sequence[RoundRecord], options: TrackingOptions
) -> Iterator[Tracker]:
    """Starts the tracked runs (:meth:`Tracker.start`) for the block and ends them, as failed if the block raises.

    A run that stops to wait for a person's labels (:class:`~alseg.core.oracle.LabelsPending`) has not failed.
    """
    tracker = Tracker(run_dir, names, options)
    try:
        tracker.start(records)
        yield tracker
    except LabelsPending:
        tracker.close(failed=False)
        raise
    except BaseException:
        tracker.close(failed=True)
        raise
    tracker.close(failed=False)
