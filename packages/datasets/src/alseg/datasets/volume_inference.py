"""Running a model over one whole volume: slice by slice for 2D models, the whole volume for 3D models.

A 3D model gets the volume as one item and its own ``predict_step`` decides how to cover it (the reference U-Net
runs MONAI's ``sliding_window_inference`` with its ``roi_size``, as in its validation). A 2D model gets the slices
along the data module's slicing axis, in batches, exactly as its slice items were cut
(:mod:`alseg.datasets.items`), and the slice probabilities are stacked back into a volume.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from alseg.core.errors import PluginError
from alseg.core.model import PytorchModel
from alseg.datasets.items import format_item_id


def predict_volume(
    model: PytorchModel,
    image: np.ndarray,
    case_id: str,
    spacing: tuple[float, float, float],
    device: torch.device,
    axis: int = 2,
    batch_size: int = 4,
) -> np.ndarray:
    """Probabilities of one case.

    Args:
        model: A model with its weights, in eval mode on ``device`` (float32).
        image: Normalised ``float32 [C, X, Y, Z]`` in the reader's frame.
        case_id: The case id (the batches carry it, and item ids, as data-module items do).
        spacing: Voxel size in mm along X, Y, Z.
        device: Where the model runs.
        axis: Slicing axis of a 2D model.
        batch_size: Slices per forward pass of a 2D model.

    Returns:
        ``float32 [K, X, Y, Z]``, ``K`` = the model's outputs (classes or regions).

    Raises:
        PluginError: The model returned probabilities of another shape.
    """
    dims = model.input_dimensionality()
    with torch.inference_mode():
        if dims == 3:
            batch = {"image": _tensor(image[None], device), "id": [case_id], "case_id": [case_id]}
            batch["spacing"] = torch.tensor([spacing], dtype=torch.float32, device=device)
            return _checked(model, batch, image.shape[1:])[0]
        if dims != 2:
            raise PluginError(f"{type(model).__name__}.input_dimensionality() must be 2 or 3. Got {dims!r}.")
        return _predict_slices(model, image, case_id, spacing, device, axis, batch_size)


def _predict_slices(
    model: PytorchModel,
    image: np.ndarray,
    case_id: str,
    spacing: tuple[float, float, float],
    device: torch.device,
    axis: int,
    batch_size: int,
) -> np.ndarray:
    count = image.shape[1 + axis]
    in_plane = tuple(size for a, size in enumerate(image.shape[1:]) if a != axis)
    slice_spacing = (*(s for a, s in enumerate(spacing) if a != axis), spacing[axis])
    output: np.ndarray | None = None
    for start in range(0, count, batch_size):
        indices = list(range(start, min(start + batch_size, count)))
        slices = np.moveaxis(np.take(image, indices, axis=1 + axis), 1 + axis, 0)  # [B, C, *in_plane]
        batch: dict[str, Any] = {
            "image": _tensor(slices, device),
            "id": [format_item_id(case_id, index) for index in indices],
            "case_id": [case_id] * len(indices),
            "slice_index": torch.tensor(indices, device=device),
            "spacing": torch.tensor([slice_spacing] * len(indices), dtype=torch.float32, device=device),
        }
        probabilities = _checked(model, batch, in_plane)  # [B, K, *in_plane]
        if output is None:
            output = np.empty((probabilities.shape[1], *image.shape[1:]), np.float32)
        target = (slice(None),) * (1 + axis) + (slice(start, start + len(indices)),)
        output[target] = np.moveaxis(probabilities, 0, 1 + axis)
    return output


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)


def _checked(model: PytorchModel, batch: dict[str, Any], spatial: tuple[int, ...]) -> np.ndarray:
    """Runs ``predict_step`` and checks it gives ``[B, num_classes, *spatial]``."""
    probabilities = model.predict_step(batch, 0)
    expected = (len(batch["id"]), model.num_classes, *spatial)
    if tuple(probabilities.shape) != expected:
        raise PluginError(
            f"{type(model).__name__}.predict_step returned probabilities of shape {tuple(probabilities.shape)} "
            f"for images {tuple(batch['image'].shape)}; expected {expected}."
        )
    return probabilities.float().cpu().numpy()
