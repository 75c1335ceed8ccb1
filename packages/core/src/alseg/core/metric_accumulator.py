"""Accumulates per-volume segmentation metrics over batches, gathering 2D slices by case.

See :mod:`alseg.core.metrics` for the metrics and their empty-set conventions.
"""

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from alseg.core.errors import ConfigError, DataError
from alseg.core.metrics import labels_to_masks, probabilities_to_masks, volume_metrics


def _check_config(
    class_names: Mapping[int, str], multi_label: bool, thresholds: Sequence[float] | None
) -> tuple[float, ...]:
    """Validate the accumulator's arguments; return the thresholds to use."""
    min_classes = 1 if multi_label else 2
    names = dict(class_names)
    if sorted(names) != list(range(len(names))) or len(names) < min_classes:
        raise ConfigError(
            f"The class_names of the metrics must map every index 0..C-1 to a name (C >= {min_classes}). Got {names}."
        )
    if len(set(names.values())) != len(names):
        raise ConfigError(f"The class_names of the metrics must be unique. Got {names}.")
    if not multi_label and thresholds is not None:
        raise ConfigError(f"Thresholds apply only to multi-label outputs. Got {thresholds}.")
    levels = (0.5,) if thresholds is None else tuple(thresholds)
    if not levels or not all(0 < t < 1 for t in levels) or len(set(levels)) != len(levels):
        raise ConfigError(f"The metric thresholds must be one or more distinct values in (0, 1). Got {thresholds}.")
    return levels


def _pack(masks: Tensor) -> tuple[np.ndarray, tuple[int, ...]]:
    # numpy, because torch has no bit packing: 8x less memory than bool for waiting slices.
    return np.packbits(masks.numpy()), tuple(masks.shape)


def _unpack(packed: tuple[np.ndarray, tuple[int, ...]]) -> Tensor:
    bits, shape = packed
    return torch.from_numpy(np.unpackbits(bits, count=math.prod(shape)).reshape(shape).view(bool))


class VolumeMetricAccumulator:
    """Accumulates per-volume metrics over batches and averages them over cases.

    3D items are volumes of their own, measured at :meth:`update`. 2D items (``slice_indices``
    given) are gathered per case id, stacked in slice-index order along a new last axis into one
    volume ``[C, H, W, S]`` (gaps in the indices are closed up) and measured at :meth:`compute`:
    per-slice Dice on tumour-free slices is meaningless. Until then only their bit-packed masks are
    kept (1 bit per voxel, class and threshold).

    Keys of :meth:`compute`: ``<metric>_<class name>`` for every foreground class and
    ``mean_<metric>`` (mean over foreground classes), ``<metric>`` in :data:`METRICS`
    (``hd95*`` only with ``hausdorff``, ``hd95_mm`` only when every case has a spacing). With
    several ``thresholds`` the first gives these keys and each other one adds a ``_t<threshold>``
    suffix, e.g. ``dice_ET_t0.75``.
    """

    def __init__(
        self,
        class_names: Mapping[int, str],
        multi_label: bool,
        thresholds: Sequence[float] | None = None,
        hausdorff: bool = True,
    ) -> None:
        """Create an empty accumulator.

        Args:
            class_names: Channel index -> name for indices ``0 .. C-1`` (single-label: 0 is the
                background).
            multi_label: True: sigmoid outputs, binary labels ``[B, C, *spatial]``. False: softmax
                outputs, class-index labels ``[B, 1, *spatial]`` or ``[B, *spatial]``.
            thresholds: Confidence levels of multi-label outputs, each in (0, 1); default (0.5,).
                Single-label outputs are binarised by argmax and take none.
            hausdorff: Whether to compute HD95, the expensive part (3 classes of 240x240x155 on
                2 CPU cores: 0.6 s without, 1.5 s with); e.g. off for frequent validation.
        """
        self.thresholds = _check_config(class_names, multi_label, thresholds)
        self.class_names = dict(class_names)
        self.multi_label = multi_label
        self.hausdorff = hausdorff
        self.reset()

    def reset(self) -> None:
        """Forget every case."""
        self._volumes: dict[str, dict[str, float]] = {}
        self._slices: dict[str, dict[int, tuple[np.ndarray, tuple[int, ...]]]] = {}
        self._spacing: dict[str, tuple[float, ...] | None] = {}

    def update(
        self,
        probabilities: Tensor,
        labels: Tensor,
        case_ids: Sequence[str],
        slice_indices: Sequence[int] | None = None,
        spacing: Sequence[Sequence[float] | None] | None = None,
    ) -> None:
        """Add a batch.

        Args:
            probabilities: ``[B, C, *spatial]`` float.
            labels: See ``multi_label`` in the constructor.
            case_ids: Case (volume) id of every item.
            slice_indices: Slice index of every item for 2D slices; None for 3D volumes.
            spacing: Voxel spacing of every item's volume (for a slice the spacing of the gathered
                volume ``(h, w, between slices)``), or None.
        """
        num_classes = len(self.class_names)
        lengths = {len(x) for x in (case_ids, slice_indices, spacing) if x is not None}
        if probabilities.shape[1] != num_classes or lengths != {probabilities.shape[0]}:
            raise DataError(
                f"Expected probabilities [B, C={num_classes}, *spatial] and B case ids (slice "
                f"indices, spacings). Got {tuple(probabilities.shape)} and {sorted(lengths)}."
            )
        if not self.multi_label and labels.ndim == probabilities.ndim - 1:
            labels = labels.unsqueeze(1)
        for i, case in enumerate(case_ids):
            masks = [probabilities_to_masks(probabilities[i], self.multi_label, t) for t in self.thresholds]
            pred = torch.stack(masks).cpu()
            target = labels_to_masks(labels[i], num_classes, self.multi_label).cpu()
            item_spacing = None if spacing is None or spacing[i] is None else tuple(map(float, spacing[i]))
            self._add(
                case,
                None if slice_indices is None else int(slice_indices[i]),
                pred,
                target,
                item_spacing,
            )

    def _add(
        self,
        case: str,
        index: int | None,
        pred: Tensor,
        target: Tensor,
        spacing: tuple[float, ...] | None,
    ) -> None:
        if case in self._volumes or (index is None and case in self._slices):
            raise DataError(f"Case {case} was added to the metrics twice (as a volume or as slices).")
        if self._spacing.setdefault(case, spacing) != spacing:
            raise DataError(f"Case {case}: slices with different spacings {self._spacing[case]}, {spacing}.")
        if index is None:
            self._volumes[case] = self._case_values(pred, target, spacing)
        elif index in self._slices.setdefault(case, {}):
            raise DataError(f"Case {case}: slice {index} was added to the metrics twice.")
        else:
            self._slices[case][index] = _pack(torch.cat([pred.flatten(0, 1), target]))

    def _case_values(self, preds: Tensor, target: Tensor, spacing: tuple[float, ...] | None) -> dict[str, float]:
        """Metrics of one case: ``preds`` ``[T, C, *spatial]``, ``target`` ``[C, *spatial]``."""
        first = 0 if self.multi_label else 1
        names = [self.class_names[c] for c in range(first, len(self.class_names))]
        values: dict[str, float] = {}
        for threshold, pred in zip(self.thresholds, preds, strict=True):
            suffix = "" if threshold == self.thresholds[0] else f"_t{threshold:g}"
            metrics = volume_metrics(pred[first:], target[first:], spacing, self.hausdorff)
            for metric, per_class in metrics.items():
                values |= {f"{metric}_{n}{suffix}": float(v) for n, v in zip(names, per_class, strict=True)}
                values[f"mean_{metric}{suffix}"] = float(per_class.mean())
        return values

    def compute(self) -> dict[str, float]:
        """Mean over cases of every metric; an empty dict when nothing was added."""
        cases = dict(self._volumes)
        num_classes = len(self.class_names)
        for case, slices in self._slices.items():
            volume = torch.stack([_unpack(slices[k]) for k in sorted(slices)], dim=-1)
            pred = volume[:-num_classes].unflatten(0, (len(self.thresholds), num_classes))
            cases[case] = self._case_values(pred, volume[-num_classes:], self._spacing[case])
        if len({frozenset(v) for v in cases.values()}) > 1:
            raise DataError("Some cases of the metrics have a voxel spacing and others not; give all or none.")
        keys = next(iter(cases.values()), {})
        return {key: sum(v[key] for v in cases.values()) / len(cases) for key in keys}
