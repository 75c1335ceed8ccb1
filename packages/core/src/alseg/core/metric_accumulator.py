"""Accumulates per-volume segmentation metrics over batches, gathering 2D slices by case.

See :mod:`alseg.core.metrics` for the metrics and their empty-set conventions. Voxels a label marks as
:data:`~alseg.core.partial_labels.UNKNOWN` (e.g. ignored mask values of an image folder) are in no class of the
prediction nor of the label: they add to no Dice, sensitivity or surface, and count as true negatives of specificity.

Distributed runs: each rank accumulates its share of the items; the ranks exchange their :meth:`state
<VolumeMetricAccumulator.state>` (e.g. with :func:`alseg.core.distributed.all_gather_objects`) and each
:meth:`merges <VolumeMetricAccumulator.merge>` all of them, so that :meth:`compute <VolumeMetricAccumulator.compute>`
gives every rank the value of a single process that saw every item once. Averaging per-rank means instead is wrong
when ranks hold different cases (or parts of one case's slices). This module does no communication itself.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from alseg.core.errors import ConfigError, DataError
from alseg.core.metrics import (
    confusion_counts,
    count_metrics,
    labels_to_masks,
    probabilities_to_masks,
    volume_metrics,
)
from alseg.core.partial_labels import known_voxels, with_unknown_as


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


_Masks = tuple[bytes, tuple[int, ...]]  # bit-packed boolean masks and their shape
_Counts = tuple[int, ...]  # flattened confusion counts [T, C, 4]: additive over a case's slices


def _pack(masks: Tensor) -> _Masks:
    # numpy, because torch has no bit packing: 8x less memory than bool for waiting slices.
    return np.packbits(masks.numpy()).tobytes(), tuple(masks.shape)


def _unpack(packed: _Masks) -> Tensor:
    bits, shape = packed
    array = np.unpackbits(np.frombuffer(bits, np.uint8), count=math.prod(shape))
    return torch.from_numpy(array.reshape(shape).view(bool))


@dataclass
class AccumulatorState:
    """What an accumulator holds per case; picklable, so that ranks can exchange it (see ``merge``).

    Attributes:
        volumes: Metric values of every 3D case, measured when it was added.
        slices: Of every 2D slice, by case and slice index: with HD95, bit-packed masks ``[T * C + C, H, W]``
            (predictions per threshold, then the ground truth), since surface distances need the whole volume;
            without, only the confusion counts ``[T, C, 4]``, which add up to the volume's (64 bytes per slice of 4
            classes, so that a validation epoch's memory does not grow with the image size).
        spacing: Voxel spacing (or None) of every case.
    """

    volumes: dict[str, dict[str, float]] = field(default_factory=dict)
    slices: dict[str, dict[int, _Masks | _Counts]] = field(default_factory=dict)
    spacing: dict[str, tuple[float, ...] | None] = field(default_factory=dict)

    def add(
        self,
        case: str,
        index: int | None,
        entry: dict[str, float] | _Masks | _Counts,
        spacing: tuple[float, ...] | None,
        drop_identical: bool,
    ) -> None:
        """Add a volume's metric values (``index`` None) or a slice's masks.

        Args:
            case: Case id.
            index: Slice index, or None for a volume.
            entry: The volume's metric values, or the slice's packed masks or confusion counts.
            spacing: The case's voxel spacing.
            drop_identical: Drop an entry equal to the one already held (e.g. a padding duplicate of
                ``DistributedSampler`` measured on another rank) instead of raising.

        Raises:
            DataError: A case as a volume and as slices, slices with different spacings, or a second entry of a
                volume or slice (with different contents if ``drop_identical``).
        """
        if case in (self.slices if index is None else self.volumes):
            raise DataError(f"Case {case} was added to the metrics twice (as a volume and as slices).")
        if self.spacing.get(case, spacing) != spacing:
            raise DataError(f"Case {case}: slices with different spacings {self.spacing[case]}, {spacing}.")
        entries: dict = self.volumes if index is None else self.slices.setdefault(case, {})
        key = case if index is None else index
        if key in entries and not (drop_identical and entries[key] == entry):
            what = f"Case {case}" if index is None else f"Case {case}: slice {index}"
            differing = " with different predictions or labels" if drop_identical else ""
            raise DataError(f"{what} was added to the metrics twice{differing}.")
        entries[key] = entry
        self.spacing[case] = spacing


class VolumeMetricAccumulator:
    """Accumulates per-volume metrics over batches and averages them over cases.

    3D items are volumes of their own, measured at :meth:`update`. 2D items (``slice_indices``
    given) are gathered per case id, stacked in slice-index order along a new last axis into one
    volume ``[C, H, W, S]`` (gaps in the indices are closed up) and measured at :meth:`compute`:
    per-slice Dice on tumour-free slices is meaningless. Until then only what the volume's metrics
    need is kept: confusion counts per slice, and with ``hausdorff`` bit-packed masks (1 bit per
    voxel, class and threshold).

    Keys of :meth:`compute`: ``<metric>_<class name>`` for every foreground class and
    ``mean_<metric>`` (mean over foreground classes), ``<metric>`` in :data:`~alseg.core.metrics.METRICS`
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
        self._state = AccumulatorState()

    def state(self) -> AccumulatorState:
        """Returns the cases added so far (the accumulator's own state, not a copy: do not modify it)."""
        return self._state

    def merge(self, states: Sequence[AccumulatorState]) -> None:
        """Replace the cases by the union of several accumulators' states, e.g. one per rank of a distributed run.

        A volume or slice found in several states with identical contents is counted once: a padding duplicate of
        ``DistributedSampler``, which repeats items on other ranks. (Within one state a duplicate was already
        rejected by :meth:`update`.)

        Raises:
            DataError: The states hold a volume or slice with different contents, a case as a volume and as
                slices, or a case with different spacings.
        """
        merged = AccumulatorState()
        for state in states:
            for case, values in state.volumes.items():
                merged.add(case, None, values, state.spacing[case], drop_identical=True)
            for case, slices in state.slices.items():
                for index, masks in slices.items():
                    merged.add(case, index, masks, state.spacing[case], drop_identical=True)
        self._state = merged

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
            known = known_voxels(labels[i][None])[0].cpu()  # [1, *spatial]; unknown voxels count in no class
            masks = [probabilities_to_masks(probabilities[i], self.multi_label, t) for t in self.thresholds]
            pred = torch.stack(masks).cpu() & known
            target = labels_to_masks(with_unknown_as(labels[i], known), num_classes, self.multi_label).cpu() & known
            item_spacing = None if spacing is None or spacing[i] is None else tuple(map(float, spacing[i]))
            if slice_indices is None:
                index, entry = None, self._volume_values(pred, target, item_spacing)
            elif self.hausdorff:
                index, entry = int(slice_indices[i]), _pack(torch.cat([pred.flatten(0, 1), target]))
            else:
                counts = torch.stack([confusion_counts(p, target) for p in pred])
                index, entry = int(slice_indices[i]), tuple(counts.long().flatten().tolist())
            self._state.add(case, index, entry, item_spacing, drop_identical=False)

    def _volume_values(self, preds: Tensor, target: Tensor, spacing: tuple[float, ...] | None) -> dict[str, float]:
        """Metrics of one case: ``preds`` ``[T, C, *spatial]``, ``target`` ``[C, *spatial]``."""
        first = self._first_class()
        return self._named([volume_metrics(p[first:], target[first:], spacing, self.hausdorff) for p in preds])

    def _slices_values(self, case: str) -> dict[str, float]:
        """Metrics of the volume of a case's slices."""
        slices = self._state.slices[case]
        num_classes = len(self.class_names)
        if not self.hausdorff:  # summed in float64: exact beyond float32's 2**24 voxels
            counts = torch.tensor(list(slices.values()), dtype=torch.float64).sum(0)
            per_threshold = counts.view(len(self.thresholds), num_classes, 4)[:, self._first_class() :]
            return self._named([count_metrics(c) for c in per_threshold])
        volume = torch.stack([_unpack(slices[k]) for k in sorted(slices)], dim=-1)
        pred = volume[:-num_classes].unflatten(0, (len(self.thresholds), num_classes))
        return self._volume_values(pred, volume[-num_classes:], self._state.spacing[case])

    def _first_class(self) -> int:
        """The first reported class: 0 for multi-label outputs, 1 (after the background) otherwise."""
        return 0 if self.multi_label else 1

    def _named(self, per_threshold: Sequence[dict[str, Tensor]]) -> dict[str, float]:
        """The keys of :meth:`compute` for one case, from its per-class metrics ``[C']`` at every threshold."""
        names = [self.class_names[c] for c in range(self._first_class(), len(self.class_names))]
        values: dict[str, float] = {}
        for threshold, metrics in zip(self.thresholds, per_threshold, strict=True):
            suffix = "" if threshold == self.thresholds[0] else f"_t{threshold:g}"
            for metric, per_class in metrics.items():
                values |= {f"{metric}_{n}{suffix}": float(v) for n, v in zip(names, per_class, strict=True)}
                values[f"mean_{metric}{suffix}"] = float(per_class.mean())
        return values

    def compute(self) -> dict[str, float]:
        """Mean over cases of every metric; an empty dict when nothing was added."""
        volumes = self._state.volumes
        cases = [volumes[c] if c in volumes else self._slices_values(c) for c in self._state.spacing]
        if len({frozenset(v) for v in cases}) > 1:
            raise DataError("Some cases of the metrics have a voxel spacing and others not; give all or none.")
        keys = next(iter(cases), {})
        return {key: sum(v[key] for v in cases) / len(cases) for key in keys}
