"""The tracked run of each experiment tracker: its Lightning logger, where it lives and how a restart continues it.

Each class wraps one Lightning logger used outside any Trainer (:mod:`alseg.core.tracking` drives them); the tracker
packages are imported only here, inside the methods, so alseg-core imports without them.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger

from alseg.core.errors import ConfigError
from alseg.core.run_directory import RunDirectory


@dataclass(frozen=True)
class TrackingOptions:
    """Where trackers put a run.

    Attributes:
        project: W&B project and MLflow experiment; None takes ``WANDB_PROJECT`` / ``MLFLOW_EXPERIMENT_NAME``,
            else ``alseg``.
        tracking_uri: MLflow tracking URI; None takes ``MLFLOW_TRACKING_URI``, else a SQLite store under the run.
        run_name: Display name of the tracked run (the run directory as given).
    """

    project: str | None = None
    tracking_uri: str | None = None
    run_name: str | None = None


class TrackedRun:
    """One tracker's run: its Lightning logger, where it is, and how many rounds it holds."""

    def __init__(self, run_dir: RunDirectory, options: TrackingOptions) -> None:
        self.run_dir = run_dir
        self.options = options
        self.logger: Logger  # set by open()
        self.opened = False
        self.logged_rounds = 0
        self.summary_round: int | None = None
        self.continued = False

    def open(self, state: dict[str, Any]) -> None:
        """Creates the logger, continuing the run that ``state`` (this tracker's entry of ``tracking.json``) names."""
        self.continued = self.continues(state)
        if self.continued:
            self.logged_rounds = state.get("logged_rounds", 0)
            self.summary_round = state.get("summary_round")
        self.logger = self.create(state if self.continued else {})
        self.opened = True

    def continues(self, state: dict[str, Any]) -> bool:
        """Returns whether ``state`` names a tracked run that this start continues."""
        return bool(state)

    def create(self, state: dict[str, Any]) -> Logger:
        """Returns the logger of a new run (empty ``state``) or of the run ``state`` names."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Returns this tracker's entry of ``tracking.json``."""
        return {"logged_rounds": self.logged_rounds, "summary_round": self.summary_round}

    def log_files(self, paths: list[Path]) -> None:
        """Stores files of the run directory with the tracked run (nothing where the tracker has no artifacts)."""

    def close(self, failed: bool) -> None:
        """Ends the tracked run."""
        self.logger.finalize("failed" if failed else "success")


class _TensorBoardRun(TrackedRun):
    """Event files in ``logs/tensorboard/``; a restart adds event files to the folder."""

    def continues(self, state: dict[str, Any]) -> bool:
        return bool(state) and (self.run_dir.logs_dir / "tensorboard").is_dir()

    def create(self, state: dict[str, Any]) -> Logger:
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(self.run_dir.logs_dir, name="tensorboard", version="", default_hp_metric=False)


class _WandbRun(TrackedRun):
    """A W&B run in ``logs/wandb/``, offline unless ``WANDB_MODE`` says otherwise."""

    def __init__(self, run_dir: RunDirectory, options: TrackingOptions) -> None:
        super().__init__(run_dir, options)
        self.mode = os.environ.get("WANDB_MODE") or "offline"
        self.offline = self.mode in ("offline", "dryrun")
        self.project = options.project or os.environ.get("WANDB_PROJECT") or "alseg"
        self.id = ""

    def open(self, state: dict[str, Any]) -> None:
        # The run keeps its id in the project, offline too, so that its offline folders sync to one W&B run.
        self.id = state.get("id", "") if state.get("project") == self.project else ""
        super().open(state)

    def continues(self, state: dict[str, Any]) -> bool:
        # W&B ignores resume offline: every offline start is a new offline run that gets the whole ledger.
        online = not self.offline and not state.get("offline", True)
        return bool(self.id) and online

    def create(self, state: dict[str, Any]) -> Logger:
        from lightning.pytorch.loggers import WandbLogger

        self.id = self.id or uuid.uuid4().hex[:12]
        return WandbLogger(
            name=self.options.run_name,
            save_dir=self.run_dir.logs_dir,
            id=self.id,
            project=self.project,
            mode=self.mode,
        )

    def state(self) -> dict[str, Any]:
        return {**super().state(), "id": self.id, "project": self.project, "offline": self.offline}

    def log_files(self, paths: list[Path]) -> None:
        import wandb

        artifact = wandb.Artifact(f"alseg-run-{self.id}", type="alseg-run")
        for path in paths:
            artifact.add_file(str(path), name=path.name)
        self.logger.experiment.log_artifact(artifact)

    def close(self, failed: bool) -> None:
        self.logger.experiment.finish(exit_code=1 if failed else 0)


class _MLflowRun(TrackedRun):
    """An MLflow run, by default in the SQLite store ``logs/mlflow/mlflow.db``."""

    def __init__(self, run_dir: RunDirectory, options: TrackingOptions) -> None:
        super().__init__(run_dir, options)
        self.tracking_uri = options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
        self.project = options.project or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "alseg"
        self.run_id = ""

    def continues(self, state: dict[str, Any]) -> bool:
        # The default store moves with the run directory; it is recorded as None.
        return bool(state.get("run_id")) and state.get("tracking_uri") == self.tracking_uri

    def create(self, state: dict[str, Any]) -> Logger:
        from lightning.pytorch.loggers import MLFlowLogger
        from mlflow.exceptions import MlflowException

        store = self.run_dir.logs_dir.resolve() / "mlflow"
        if self.tracking_uri is None:
            store.mkdir(parents=True, exist_ok=True)
        tracking_uri = self.tracking_uri or f"sqlite:///{(store / 'mlflow.db').as_posix()}"
        logger = MLFlowLogger(
            experiment_name=self.project,
            run_name=self.options.run_name,
            tracking_uri=tracking_uri,
            artifact_location=None if self.tracking_uri else (store / "artifacts").as_uri(),
            run_id=state.get("run_id"),
        )
        previous = os.environ.get("MLFLOW_TRACKING_URI")
        try:
            self.run_id = logger.run_id or ""  # creates or finds the run, and sets mlflow's global tracking URI
        except MlflowException as error:
            raise ConfigError(
                f"{self.run_dir.tracking_path} names MLflow run {state['run_id']}, which the tracking store "
                f"{tracking_uri} does not hold ({error.message}). Restore the store, or delete the 'mlflow' "
                "entry of that file to start a new MLflow run with the whole ledger."
            ) from None
        finally:  # mlflow exports its global URI: the next run in this process must not log into this run's store
            if previous is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous
        if state:
            logger.experiment.update_run(self.run_id, status="RUNNING")
        return logger

    def state(self) -> dict[str, Any]:
        return {**super().state(), "run_id": self.run_id, "tracking_uri": self.tracking_uri}

    def log_files(self, paths: list[Path]) -> None:
        for path in paths:
            self.logger.experiment.log_artifact(self.run_id, str(path))


#: The tracked run of every tracker name.
TRACKED_RUNS: dict[str, type[TrackedRun]] = {"tensorboard": _TensorBoardRun, "wandb": _WandbRun, "mlflow": _MLflowRun}
