"""The arrays of a heatmap: probabilities, the strategy's per-voxel score map and contour masks of queried items.

The per-voxel score map is the strategy's own: a strategy that has a method ``voxel_scores(probabilities,
multi_label) -> [B, *S]`` (every score-based built-in: entropy, BALD, …) gets it, computed from ``mc_samples``
MC-dropout samples ``[K, B, C, *S]`` when it sets that attribute, else from one deterministic pass ``[B, C, *S]``.
Strategies without it (random, coreset) have no map. Pure torch apart from the model's forward passes; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from alseg.core.inference import Placement, batch_probabilities
from alseg.core.model import PytorchModel


@dataclass(frozen=True)
class ItemMaps:
    """What is drawn of one item (numpy, on the host).

    Attributes:
        image: Its first image channel ``float32 [*S]``.
        prediction: Predicted foreground masks ``bool [F, *S]`` (one per foreground class or region).
        truth: Ground-truth foreground masks ``bool [F, *S]``, or None when the ground truth is unknown.
        scores: The strategy's per-voxel score map ``float32 [*S]``, or None.
    """

    image: np.ndarray
    prediction: np.ndarray
    truth: np.ndarray | None
    scores: np.ndarray | None


def score_function(strategy: Any) -> Callable[[Tensor, bool], Tensor] | None:
    """The strategy's per-voxel score hook ``voxel_scores(probabilities, multi_label)``, or None if it has none."""
    hook = getattr(strategy, "voxel_scores", None)
    return hook if callable(hook) else None


def item_maps(
    model: PytorchModel,
    strategy: Any,
    batch: dict[str, Any],
    truth: list[Tensor | None],
    multi_label: bool,
    seed: int,
    where: Placement,
) -> list[ItemMaps]:
    """Runs ``model`` (in eval mode, on the batch's device) over a batch and returns every item's maps.

    Args:
        model: The model that made the query, with its weights.
        strategy: The strategy that picked the items (its ``voxel_scores`` and ``mc_samples``, if any).
        batch: A pool or training batch (``image [B, C, *S]`` on the model's device, ``id``).
        truth: Each item's ground-truth label (shaped like a training item's) or None.
        multi_label: Whether outputs are sigmoids (regions) rather than a softmax.
        seed: Seed of the MC-dropout masks (torch's global RNG is restored afterwards).
        where: The device (the batch's) and the Trainer's precision.

    Returns:
        One :class:`ItemMaps` per item, in batch order.
    """
    probabilities = batch_probabilities(model, batch, where, getattr(strategy, "mc_samples", None), seed)
    hook = score_function(strategy)
    scores = None if hook is None else hook(probabilities, multi_label).float().cpu().numpy()
    mean = probabilities.mean(0) if probabilities.ndim == batch["image"].ndim + 1 else probabilities
    predicted = foreground_masks(mean, multi_label, from_probabilities=True)
    images = batch["image"][:, 0].float().cpu().numpy()
    return [
        ItemMaps(
            images[i],
            predicted[i],
            None if truth[i] is None else foreground_masks(truth[i][None], multi_label, mean.shape[1])[0],
            None if scores is None else scores[i],
        )
        for i in range(len(batch["id"]))
    ]


def foreground_masks(
    values: Tensor, multi_label: bool, channels: int | None = None, from_probabilities: bool = False
) -> np.ndarray:
    """Foreground masks ``bool [B, F, *S]`` of probabilities ``[B, C, *S]`` or labels.

    Softmax outputs give one mask per foreground class (argmax = c, c >= 1); sigmoid outputs one per region
    (probability > 0.5). Labels are class indices ``[B, 1, *S]`` / ``[B, *S]`` (single-label, ``channels`` classes)
    or region masks ``[B, C, *S]`` (multi-label).
    """
    if multi_label:
        masks = values > 0.5
    elif from_probabilities:
        classes = values.argmax(dim=1)
        masks = torch.stack([classes == c for c in range(1, values.shape[1])], dim=1)
    else:
        classes = values[:, 0] if values.ndim > 2 and values.shape[1] == 1 else values
        masks = torch.stack([classes == c for c in range(1, channels or 2)], dim=1)
    return masks.bool().cpu().numpy()
