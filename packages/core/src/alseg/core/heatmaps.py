"""Heatmaps of what was queried: for the first N ids selected in a round, what the querying model saw.

Drawing stays out of the query path: the ledger records the selected ids, and heatmaps are drawn afterwards from the
checkpoint of the model that made the query (round ``r``'s selection was made by round ``r - 1``'s best checkpoint).
The pipeline draws them after each round's ledger entry (``heatmaps_per_round``), on rank 0 only, on the Trainer's
device and precision, with a copy of the model (the loop's model, its weights and torch's RNG are left as they were).
For an existing run, run its ``alseg-train`` command again with ``--active_learning.heatmaps_per_round N``: the
option may change on resume, and a (re)started run first draws every completed round that has no heatmaps yet;
:func:`draw_heatmaps` does the same from Python, for any data module, without the Trainer.

Files, in ``<run_dir>/heatmaps/round_XXX/``::

    01_<id>.png       image, ground-truth (solid) and predicted (dashed) contours, the strategy's score map
                      (and Grad-CAM): :mod:`alseg.core.heatmap_files`
    01_<id>.nii.gz    the score map of a 3D item, float32, in the case's geometry where the data module knows it
    heatmaps.json     what was drawn (ids, files, checkpoint); written last: a round with it is never drawn again

The score map is the strategy's ``voxel_scores`` (:mod:`alseg.core.heatmap_maps`), under its ``mc_samples`` with
dropout masks seeded by the round's seed; strategies without it get image and contours only, and the PNG says so.
Grad-CAM: :mod:`alseg.core.gradcam`. Needs the extra ``alseg-core[heatmaps]`` (matplotlib, nibabel).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.errors import ConfigError
from alseg.core.gradcam import check_layer, gradcam_maps
from alseg.core.heatmap_files import require, write_nifti, write_png
from alseg.core.heatmap_maps import item_maps, score_function
from alseg.core.inference import Placement
from alseg.core.model import PytorchModel
from alseg.core.round_record import RoundRecord
from alseg.core.run_directory import RunDirectory, atomic_write_text

DONE = "heatmaps.json"


def check_options(per_round: int, gradcam_layer: str | None) -> None:
    """Checks the options before a run draws anything.

    Raises:
        ConfigError: ``per_round`` is not an integer >= 0, ``gradcam_layer`` is not a string, or a library is missing.
    """
    if not isinstance(per_round, int) or isinstance(per_round, bool) or per_round < 0:
        raise ConfigError(
            "The 'heatmaps_per_round' option of the active_learning section must be an integer >= 0. "
            f"Got {per_round!r}."
        )
    if gradcam_layer is not None and not (isinstance(gradcam_layer, str) and gradcam_layer):
        raise ConfigError(
            "The 'heatmaps_gradcam_layer' option of the active_learning section must be a layer name or null. "
            f"Got {gradcam_layer!r}."
        )
    if per_round:
        require("matplotlib.figure")
        require("nibabel")


def round_dir(run_dir: RunDirectory, round_index: int) -> Path:
    """The heatmap folder of a round (``<run_dir>/heatmaps/round_XXX``)."""
    return run_dir.path / "heatmaps" / run_dir.round_name(round_index)


def draw_heatmaps(
    run_dir: RunDirectory | str | Path,
    data_module: ActiveLearningDataModule,
    model: PytorchModel,
    strategy: Any,
    per_round: int,
    *,
    gradcam_layer: str | None = None,
    placement: Placement | None = None,
) -> list[int]:
    """Draws the heatmaps of every query round of a run that has none yet; returns the rounds drawn.

    Args:
        run_dir: The run directory (its ledger and checkpoints are read, never written).
        data_module: The run's data module, set up (the selected ids must be its training or pool items).
        model: A model of the run's class, bound to the data (it is copied; its weights are not changed).
        strategy: The run's strategy (its ``voxel_scores`` and ``mc_samples``).
        per_round: Items drawn per round (the first ones of each selection).
        gradcam_layer: A layer of ``model`` for Grad-CAM, or None.
        placement: Where the model runs; by default the CPU in float32.
    """
    run_dir = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    check_options(per_round, gradcam_layer)
    check_layer(model, gradcam_layer)
    records = run_dir.read_rounds()
    drawn = []
    for record in records[1:]:
        if per_round and not (round_dir(run_dir, record.round) / DONE).is_file():
            where = placement or Placement(torch.device("cpu"))
            with torch.random.fork_rng(devices=[where.device] if where.device.type == "cuda" else []):
                draw_round(run_dir, records[record.round - 1], record, data_module, model, strategy, per_round,
                           gradcam_layer, where)  # fmt: skip
            drawn.append(record.round)
    return drawn


def draw_round(
    run_dir: RunDirectory,
    querying: RoundRecord,
    record: RoundRecord,
    data_module: ActiveLearningDataModule,
    model: PytorchModel,
    strategy: Any,
    per_round: int,
    gradcam_layer: str | None,
    where: Placement,
) -> None:
    """Draws one round's heatmaps with ``querying``'s best checkpoint (the model that selected ``record``'s ids)."""
    ids = record.selected_ids[:per_round]
    folder = round_dir(run_dir, record.round)
    querier = copy.deepcopy(model).to(where.device).eval()
    state = torch.load(run_dir.path / querying.best_checkpoint, map_location=where.device, weights_only=True)
    querier.load_state_dict(state["state_dict"])
    truth = data_module.ground_truth(ids) or {}
    hook = score_function(strategy)
    name = type(strategy).__name__
    score_name = name.removesuffix("Strategy").lower() + " score"
    files: dict[str, list[str]] = {}
    for batch in _batches_of(data_module, ids, where, record.round):
        maps = item_maps(querier, strategy, batch, [truth.get(i) for i in batch["id"]],
                         data_module.multi_label(), record.seed, where)  # fmt: skip
        cams = None
        if gradcam_layer is not None:
            predicted = [m.prediction for m in maps]
            cams = gradcam_maps(querier, gradcam_layer, batch["image"], _stack(predicted), where.forward_context)
        for position, (item_id, item) in enumerate(zip(batch["id"], maps, strict=True)):
            stem = f"{ids.index(item_id) + 1:02d}_{re.sub(r'[^A-Za-z0-9._-]', '_', item_id)}"
            title = f"{item_id} · round {record.round} · selected by {name} with {querying.best_checkpoint}"
            if hook is None:
                title += f" · {name} has no per-voxel score: image and contours only"
            write_png(folder / f"{stem}.png", item, title, score_name if hook else None, _at(cams, position))
            files[item_id] = [f"{stem}.png"]
            if item.scores is not None and item.scores.ndim == 3:
                write_nifti(folder / f"{stem}.nii.gz", item.scores, data_module, item_id, f"alseg {score_name}")
                files[item_id].append(f"{stem}.nii.gz")
    summary = {"round": record.round, "checkpoint": querying.best_checkpoint, "strategy": name, "ids": ids}
    summary |= {"score": score_name if hook else None, "gradcam_layer": gradcam_layer, "files": files}
    atomic_write_text(folder / DONE, json.dumps(summary, indent=2) + "\n")


def _batches_of(
    data_module: ActiveLearningDataModule, ids: list[str], where: Placement, round_index: int
) -> Iterator[dict[str, Any]]:
    """The items ``ids`` (training or pool items), in batches of the loaders, on the placement's device."""
    wanted = set(ids)
    loaders = [data_module.labeled_dataloader, data_module.unlabeled_dataloader]
    for loader in loaders:
        for batch in loader():
            keep = [i for i, item_id in enumerate(batch["id"]) if item_id in wanted]
            if keep:
                wanted -= {batch["id"][i] for i in keep}
                yield where.convert_input(_subset(batch, keep, where.device))
            if not wanted:
                return
    if wanted:
        raise ConfigError(
            f"Cannot draw the heatmaps of round {round_index}: the selected ids {sorted(wanted)[:10]} are neither "
            f"training nor pool items of {type(data_module).__name__}. Set heatmaps_per_round to 0 to go on without."
        )


def _subset(batch: dict[str, Any], keep: list[int], device: torch.device) -> dict[str, Any]:
    picked: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            picked[key] = value[keep].to(device)
        elif isinstance(value, list | tuple):
            picked[key] = [value[i] for i in keep]
        else:
            picked[key] = value
    return picked


def _stack(arrays: list[Any]) -> Any:
    return np.stack(arrays)


def _at(values: Any, position: int) -> Any:
    return None if values is None else values[position]
