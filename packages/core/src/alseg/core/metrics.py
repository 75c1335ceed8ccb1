"""Segmentation metrics of whole volumes (MONAI's), and an accumulator gathering 2D slices by case.

Per class and volume: Dice, sensitivity, specificity and HD95 (95th-percentile symmetric Hausdorff
distance) in voxels and, with a voxel spacing, in mm. Masks are one-hot booleans ``[C, *spatial]``.

Empty-set conventions (so that no NaN ever reaches a mean), per class:

* empty ground truth and empty prediction: Dice 1, HD95 0;
* exactly one of them empty: Dice 0, HD95 = the diagonal of the voxel-centre grid,
  ``sqrt(sum(((n_i - 1) * s_i) ** 2))`` for shape ``n`` and spacing ``s`` (1 for voxel units): the
  largest distance two voxels of the image can have, so no real prediction scores worse;
* sensitivity ``TP / (TP + FN)`` is 1 when the ground truth is empty (no positive to miss);
  specificity ``TN / (TN + FP)`` is 1 when the ground truth fills the image (no negative).

Foreground classes: for single-label (softmax) outputs every class but 0 (background), whose
metrics are neither reported nor averaged; for multi-label (sigmoid) outputs every channel.
"""

import math
import warnings
from collections.abc import Sequence

import torch
from monai.metrics import (
    compute_confusion_matrix_metric,
    compute_hausdorff_distance,
    get_confusion_matrix,
)
from monai.networks.utils import one_hot
from torch import Tensor

from alseg.core.errors import DataError
from alseg.core.partial_labels import known_voxels, with_unknown_as

METRICS = ("dice", "sensitivity", "specificity", "hd95", "hd95_mm")
_LOWER_IS_BETTER = ("loss", "hd95", "hausdorff")


def lower_is_better(name: str) -> bool:
    """Whether a lower value of the logged metric ``name`` (e.g. ``val/loss``, ``test/mean_hd95``) is better."""
    return any(word in name for word in _LOWER_IS_BETTER)


def probabilities_to_masks(probabilities: Tensor, multi_label: bool, threshold: float = 0.5) -> Tensor:
    """Binarise the probabilities of one item.

    Args:
        probabilities: ``[C, *spatial]``.
        multi_label: True: ``probabilities > threshold`` per channel; False: one-hot of the argmax.
        threshold: Confidence level of multi-label outputs.

    Returns:
        Boolean one-hot masks ``[C, *spatial]``.
    """
    if multi_label:
        return probabilities > threshold
    index = probabilities.argmax(0, keepdim=True)
    return one_hot(index, probabilities.shape[0], dtype=torch.bool, dim=0)


def labels_to_masks(labels: Tensor, num_classes: int, multi_label: bool) -> Tensor:
    """Turn the labels of one item into boolean one-hot masks ``[C, *spatial]``.

    Args:
        labels: Single-label: class indices ``[1, *spatial]``. Multi-label: binary
            ``[C, *spatial]``.
        num_classes: ``C``.
        multi_label: Which of the two label formats ``labels`` has.

    Returns:
        Boolean masks ``[C, *spatial]``.
    """
    if multi_label:
        return labels.bool()
    if labels.min() < 0 or labels.max() >= num_classes:
        found = sorted(labels.unique().tolist())
        raise DataError(f"Class indices must be in [0, {num_classes - 1}]. Got values {found}.")
    return one_hot(labels.long(), num_classes, dtype=torch.bool, dim=0)


def label_dice(pred: Tensor, target: Tensor, num_classes: int, multi_label: bool) -> float:
    """Mean Dice over the foreground classes of two labels of one item (e.g. a pseudo label and the ground truth).

    Args:
        pred: Single-label class indices ``[1, *spatial]`` or multi-label binary ``[C, *spatial]``.
        target: The same format as ``pred``.
        num_classes: ``C``.
        multi_label: Which of the two label formats the labels have.

    Returns:
        The mean of the per-class Dice, with the empty-set conventions of the module docstring; voxels either label
        marks ``UNKNOWN`` (:mod:`alseg.core.partial_labels`) are left out.
    """
    first = 0 if multi_label else 1
    known = known_voxels(pred[None])[0] & known_voxels(target[None])[0]
    masks = [
        labels_to_masks(with_unknown_as(labels, known), num_classes, multi_label)[first:] & known
        for labels in (pred, target)
    ]
    return float(volume_metrics(*masks, hausdorff=False)["dice"].mean())


def hd95(pred: Tensor, target: Tensor, spacing: Sequence[float] | None = None) -> Tensor:
    """95th-percentile Hausdorff distance of every class of one volume (MONAI's, Euclidean).

    Args:
        pred: Boolean masks ``[C, *spatial]``.
        target: Boolean masks ``[C, *spatial]``.
        spacing: Voxel spacing per spatial axis (e.g. mm); None for voxel units.

    Returns:
        Distances ``[C]`` (float32), with the empty-set conventions of the module docstring.
    """
    shape = pred.shape[1:]
    if spacing is not None and len(spacing) != len(shape):
        raise DataError(f"Spacing must have one value per spatial axis of {tuple(shape)}. Got {spacing}.")
    scale = [1.0] * len(shape) if spacing is None else [float(s) for s in spacing]
    penalty = math.sqrt(sum(((n - 1) * s) ** 2 for n, s in zip(shape, scale, strict=True)))
    out = torch.zeros(pred.shape[0])
    for c in range(pred.shape[0]):
        pred_any, target_any = bool(pred[c].any()), bool(target[c].any())
        if pred_any != target_any:
            out[c] = penalty
        elif pred_any:
            with warnings.catch_warnings():
                # MONAI 1.5+ passes its own deprecated ``always_return_as_numpy`` argument.
                warnings.filterwarnings("ignore", ".*always_return_as_numpy", FutureWarning)
                out[c] = compute_hausdorff_distance(
                    pred[None, c : c + 1],
                    target[None, c : c + 1],
                    True,
                    percentile=95,
                    spacing=scale,
                )[0, 0]
    return out


def confusion_counts(pred: Tensor, target: Tensor) -> Tensor:
    """Per-class confusion counts of one volume or slice: additive over the slices of a volume.

    Args:
        pred: Boolean masks ``[C, *spatial]``.
        target: Boolean masks ``[C, *spatial]``.

    Returns:
        ``[C, 4]`` float32 counts of true positives, false positives, true negatives and false negatives (MONAI's
        order); exact for up to 2**24 voxels per slice.
    """
    if pred.shape != target.shape:
        raise DataError(f"Prediction {tuple(pred.shape)} and label {tuple(target.shape)} masks differ.")
    return get_confusion_matrix(pred[None].float(), target[None].float())[0]


def count_metrics(counts: Tensor) -> dict[str, Tensor]:
    """``dice``, ``sensitivity`` and ``specificity`` ``[C]`` of confusion counts ``[C, 4]`` (see ``confusion_counts``).

    Dice is the F1 score of the counts: one pass over the volume instead of a second one in ``compute_dice``. MONAI
    gives NaN for 0/0, which the conventions of the module docstring turn into 1.
    """
    names = {"dice": "f1 score", "sensitivity": "sensitivity", "specificity": "specificity"}
    return {key: compute_confusion_matrix_metric(name, counts[None])[0].nan_to_num(1.0) for key, name in names.items()}


def volume_metrics(
    pred: Tensor, target: Tensor, spacing: Sequence[float] | None = None, hausdorff: bool = True
) -> dict[str, Tensor]:
    """Per-class metrics of one volume.

    Args:
        pred: Boolean masks ``[C, *spatial]``.
        target: Boolean masks ``[C, *spatial]``.
        spacing: Voxel spacing per spatial axis; None leaves out ``hd95_mm``.
        hausdorff: Whether to compute ``hd95``/``hd95_mm`` (by far the most expensive part).

    Returns:
        ``dice``, ``sensitivity``, ``specificity``, ``hd95`` (voxels) and, with a spacing,
        ``hd95_mm``: each float32 ``[C]``, NaN-free (conventions in the module docstring).
    """
    metrics = count_metrics(confusion_counts(pred, target))
    if not hausdorff:
        return metrics
    metrics["hd95"] = hd95(pred, target)
    if spacing is not None and len(set(spacing)) == 1 and len(spacing) == pred.ndim - 1:
        # Isotropic spacing scales every distance (and the penalty) alike: skip a second pass.
        metrics["hd95_mm"] = metrics["hd95"] * float(spacing[0])
    elif spacing is not None:
        metrics["hd95_mm"] = hd95(pred, target, spacing)
    return metrics
