"""A trained model of a run directory: the round's best checkpoint and the data module it was trained on.

The model and the data module are rebuilt from the run's ``config.yaml`` (its ``model`` and ``data`` sections, as
``alseg-train`` built them); the data module is prepared (its cases found, decoded into its cache and split, the
normaliser fitted on the training cases) and must hold the data the run was trained on: its data fingerprint must
equal the one in ``run.json``. The weights are those of the round's ``best_checkpoint`` in ``rounds.jsonl``.
"""

from __future__ import annotations

import json
from argparse import ArgumentError
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentParser

from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.errors import AlsegError, ConfigError, DataError
from alseg.core.model import PytorchModel
from alseg.core.registry import resolve_class_path
from alseg.core.round_record import RoundRecord
from alseg.core.run_directory import RunDirectory
from alseg.datasets.volume_data_module import VolumeDataModule


@dataclass(frozen=True)
class TrainedRun:
    """The model of one round of a run, ready to predict.

    Attributes:
        path: The run directory.
        record: The round's ledger record.
        checkpoint: The checkpoint file the weights come from.
        model: The model with those weights (on the CPU, in eval mode).
        data_module: The run's data module, prepared.
    """

    path: Path
    record: RoundRecord
    checkpoint: Path
    model: PytorchModel
    data_module: VolumeDataModule


def choose_round(run_dir: RunDirectory, round_index: int | None) -> RoundRecord:
    """The record of ``round_index`` (default: the last completed round) of a run directory.

    Raises:
        ConfigError: The directory is not a run directory, has no completed round, or not that round.
    """
    if not run_dir.path.is_dir():
        raise ConfigError(f"Run directory {run_dir.path} does not exist or is not a directory.")
    if not run_dir.config_path.is_file():
        raise ConfigError(
            f"{run_dir.path} is not an alseg run directory: it has no config.yaml. Give the output_dir of an "
            "alseg-train run."
        )
    records = run_dir.read_rounds()
    if not records:
        raise ConfigError(
            f"Run directory {run_dir.path} has no completed round ({run_dir.ledger_path.name} is missing or empty): "
            "there is no trained model yet. Wait for round 0 to finish."
        )
    if round_index is None:
        return records[-1]
    if not 0 <= round_index < len(records):
        raise ConfigError(
            f"Unknown round {round_index} of run {run_dir.path}. Completed rounds: 0 to {len(records) - 1}."
        )
    return records[round_index]


def load_run(path: str | Path, round_index: int | None = None) -> TrainedRun:
    """Loads the best checkpoint of a round of a run, with the run's data module.

    Raises:
        ConfigError: See :func:`choose_round`; the checkpoint is missing; ``config.yaml`` does not build a model and
            a volume data module.
        DataError: The checkpoint cannot be read or does not fit the model; the data module's data differs from the
            data the run was trained on.
    """
    run_dir = RunDirectory(path)
    record = choose_round(run_dir, round_index)
    checkpoint = run_dir.path / record.best_checkpoint
    if not checkpoint.is_file():
        raise ConfigError(
            f"The checkpoint {checkpoint} of round {record.round}, named in {run_dir.ledger_path}, is missing."
        )
    model, data_module = build_model_and_data(run_dir.config_path)
    model.bind_data(data_module)
    data_module.prepare_data()
    _check_fingerprint(run_dir, data_module)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict(state)
    except (OSError, RuntimeError, KeyError, EOFError, TypeError, ValueError) as error:
        raise DataError(f"Cannot load the checkpoint {checkpoint} into the run's model: {error}") from None
    return TrainedRun(run_dir.path, record, checkpoint, model.eval(), data_module)


def build_model_and_data(config_path: Path) -> tuple[PytorchModel, VolumeDataModule]:
    """The model and the data module of a run's ``config.yaml``.

    Raises:
        ConfigError: The file lacks or mistypes a section, or its data module is not a volume data module.
    """
    try:
        config = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{config_path} is not valid YAML: {error}") from None
    sections = {key: (config or {}).get(key) if isinstance(config, dict) else None for key in ("model", "data")}
    for key, value in sections.items():
        if not (isinstance(value, dict) and isinstance(value.get("class_path"), str)):
            raise ConfigError(f"{config_path}: the '{key}' section must have a class_path. Got {value!r}.")
        value["class_path"] = resolve_class_path(key, value["class_path"])
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(PytorchModel, "model", required=True)
    parser.add_subclass_arguments(ActiveLearningDataModule, "data", required=True)
    objects = _instantiate(parser, sections, config_path)
    if not isinstance(objects["data"], VolumeDataModule):
        raise ConfigError(
            f"alseg-predict writes NIfTI volumes and needs a run of a volume data module (brats, decathlon). "
            f"The run of {config_path} uses {type(objects['data']).__name__}."
        )
    return objects["model"], objects["data"]


def _instantiate(parser: ArgumentParser, sections: dict[str, Any], config_path: Path) -> dict[str, Any]:
    """Builds the sections; a constructor's own :class:`AlsegError` is raised as it is (as ``alseg-train`` does)."""
    try:
        built = parser.instantiate(parser.parse_object(sections))
    except (ArgumentError, TypeError, ValueError) as error:
        cause = error
        while cause is not None and not isinstance(cause, AlsegError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise ConfigError(f"{config_path}: cannot build the model and the data module: {error}") from None
    return {"model": built.model, "data": built.data}


def _check_fingerprint(run_dir: RunDirectory, data_module: VolumeDataModule) -> None:
    if not run_dir.identity_path.is_file():
        return
    recorded = json.loads(run_dir.identity_path.read_text()).get("data_fingerprint")
    current = data_module.data_fingerprint()
    if recorded is not None and recorded != current:
        raise DataError(
            f"The data of run {run_dir.path} changed since it was trained (data fingerprint {recorded[:12]}… in "
            f"{run_dir.identity_path.name}, now {current[:12]}…): images, labels or the split differ, so the split "
            "and the normalisation would not be the run's. Restore the data or train again."
        )
