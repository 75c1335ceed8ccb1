"""Writing one annotation round: what a person labels, as NIfTI files in the geometry of the case files.

``DIR/round_XXX/`` holds::

    manifest.json    the round (ids, kind, case, slice index or box in the file's voxels, files, label values):
                     written once, never edited
    README.txt       what to do, for the annotator
    images/          every item's image: the case's intensities as decoded (4D [X, Y, Z, C] for several channels)
    predictions/     the model's label map of every item, in the dataset's label values: a pre-annotation to correct
    masks/           empty: the annotator saves one mask per item here, named as its image

Slices are single-slice NIfTI files and patches the box of the case's file (:mod:`alseg.datasets.annotation_items`);
a patch's pre-annotation is cut from the model's prediction of its whole case, so the box's borders keep their
context. The folder is written under a temporary name and renamed, so it is complete or absent.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from itertools import groupby
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from alseg.core.oracle import LabelRequest
from alseg.datasets.annotation_items import PLURAL, AnnotationItem
from alseg.datasets.label_maps import LabelMapWriter
from alseg.datasets.labels import LabelScheme
from alseg.datasets.volume_data_module import VolumeDataModule
from alseg.datasets.volume_inference import predict_volume

FORMAT = "alseg-annotation-round"
MANIFEST, README = "manifest.json", "README.txt"
IMAGES, PREDICTIONS, MASKS = "images", "predictions", "masks"


def label_values(scheme: LabelScheme) -> dict[str, str]:
    """The label values an annotator paints, with what each means (``{"0": "background", "4": "in TC, WT, ET"}``)."""
    if not scheme.multilabel:
        return {str(value): name for value, name in zip(scheme.class_values or (), scheme.class_names, strict=True)}
    regions = dict(zip(scheme.class_names, scheme.regions or (), strict=True))
    return {
        str(value): ", ".join(name for name, members in regions.items() if value in members) or "background"
        for value in scheme.values
    }


def round_name(round_index: int) -> str:
    """The folder of a round (``round_003``)."""
    return f"round_{round_index:03d}"


def write_round(round_dir: Path, request: LabelRequest, threshold: float | None = None) -> bytes:
    """Writes the round folder of ``request`` (it must not exist); returns the bytes of its manifest.

    Args:
        round_dir: ``DIR/round_XXX``.
        request: The round's selection, data module and model.
        threshold: Multi-label predictions: the region threshold (default the model's first confidence level).
    """
    data_module: VolumeDataModule = request.data_module  # type: ignore[assignment]
    scheme = data_module.source().label_scheme
    levels = getattr(request.model, "confidence_levels", None) or [0.5]
    writer = LabelMapWriter(scheme, levels[0] if threshold is None else threshold)
    items = [AnnotationItem.of(data_module, item_id) for item_id in request.ids]
    temporary = round_dir.with_name(f".{round_dir.name}.{uuid.uuid4().hex}.tmp")
    try:
        for folder in (IMAGES, PREDICTIONS, MASKS):
            (temporary / folder).mkdir(parents=True)
        for item, probabilities in zip(items, _predict(request, items), strict=True):
            image = np.asarray(item.slab(data_module.volume_cache.image(item.case_id)))
            description = f"alseg round {request.round} {item.item_id}"
            nib.save(item.to_file(image.astype(np.float32), description), temporary / IMAGES / item.name)
            nib.save(item.to_file(writer(probabilities), description), temporary / PREDICTIONS / item.name)
        manifest = manifest_bytes(request.round, data_module, items)
        (temporary / MANIFEST).write_bytes(manifest)
        (temporary / README).write_text(_readme(request.round, json.loads(manifest)))
        round_dir.parent.mkdir(parents=True, exist_ok=True)
        os.rename(temporary, round_dir)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return manifest


def manifest_bytes(round_index: int, data_module: VolumeDataModule, items: list[AnnotationItem]) -> bytes:
    """The manifest of a round (JSON, deterministic)."""
    scheme = data_module.source().label_scheme
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": 1,
        "round": round_index,
        "label_values": label_values(scheme),
        "accepted_values": [int(v) for v in scheme.values],
        "channels": list(data_module.source().cases[0].modalities),
        "items": [_entry(item) for item in items],
    }
    return (json.dumps(manifest, indent=2) + "\n").encode()


def _entry(item: AnnotationItem) -> dict[str, Any]:
    return {
        "id": item.item_id,
        "kind": item.kind,
        "case_id": item.case_id,
        "slice_index": item.slice_index,
        "axis": item.axis,
        "box": None if item.box is None else dict(zip(("start", "size"), map(list, item.file_box), strict=True)),
        "source_image": str(item.geometry.image.get_filename()),
        "image": f"{IMAGES}/{item.name}",
        "prediction": f"{PREDICTIONS}/{item.name}",
        "mask": f"{MASKS}/{item.name}",
        "shape": list(item.shape),
        "affine": [[round(float(v), 6) for v in row] for row in item.affine],
    }


def _predict(request: LabelRequest, items: list[AnnotationItem]) -> list[np.ndarray]:
    """The model's probabilities ``[K, *item]`` of every item (reader frame), on the Trainer's device.

    A slice or volume is predicted alone; a patch is cut from the prediction of its whole case (made once per case).
    """
    data_module: VolumeDataModule = request.data_module  # type: ignore[assignment]
    device = request.placement.device if request.placement is not None else torch.device("cpu")
    model, training = request.model, request.model.training
    model.to(device).eval()
    cache, outputs = data_module.volume_cache, [np.empty(0)] * len(items)
    try:
        for case_id, group in groupby(
            sorted(range(len(items)), key=lambda i: items[i].case_id), lambda i: items[i].case_id
        ):
            meta = cache.meta(case_id)
            normalised = data_module.normalizer(np.asarray(cache.image(case_id)), meta.nonzero)
            whole = None
            for index in group:  # one case at a time: its normalised image, and its prediction for patches
                item = items[index]
                if item.box is None:
                    outputs[index] = _predict_case(
                        model, item.slab(normalised), data_module, case_id, meta.spacing, device
                    )
                    continue
                if whole is None:
                    whole = _predict_case(model, normalised, data_module, case_id, meta.spacing, device)
                outputs[index] = item.slab(whole)
        return outputs
    finally:
        model.train(training)


def _predict_case(
    model: Any, image: np.ndarray, data_module: VolumeDataModule, case_id: str, spacing: Any, device: torch.device
) -> np.ndarray:
    return predict_volume(model, image, case_id, spacing, device, data_module.axis, data_module.pool_batch_size)


def _readme(round_index: int, manifest: dict[str, Any]) -> str:
    values = "\n".join(f"    {value}  {meaning}" for value, meaning in manifest["label_values"].items())
    kind = manifest["items"][0]["kind"]
    context = (
        "\n  The box is a part of the case: open the case's own image (source_image in manifest.json) too for its "
        "\n  surroundings; the box file overlays it."
        if kind == "patch"
        else ""
    )
    return f"""alseg annotation round {round_index}: {len(manifest["items"])} items ({PLURAL[kind]}) to label.

For every file in images/ (a {kind} of a case, in the geometry of the case's own file):{context}
  1. Open images/<name> in 3D Slicer or ITK-SNAP (channels {", ".join(manifest["channels"])} on the 4th axis
     when there are several).
  2. Load predictions/<name> as its segmentation: the model's guess, to correct.
  3. Paint these label values (any other value is refused):
{values}
  4. Save the segmentation as masks/<name>, with the image's size and geometry (a copy of the prediction that
     you edited is fine).

Every item of manifest.json needs exactly one mask, and masks/ holds nothing else. Do not edit manifest.json.
Then run the same alseg-train command again: it checks every mask, imports them all, and continues the run.
"""
