"""Label conventions: raw label values on disk → training targets.

BraTS ≤ 2021 label maps use 0 background, 1 necrotic tumour core, 2 peritumoral edema,
4 enhancing tumour; BraTS 2023 uses 3 for enhancing tumour. The Decathlon's BrainTumour task
numbers differently again (1 edema, 2 non-enhancing tumour, 3 enhancing), which is why Decathlon
labels are declared per task by ``dataset.json``.

Three target modes:

* ``"multilabel"`` — overlapping regions, one binary channel each, ``uint8 [R, X, Y, Z]``
  (sigmoid outputs). BraTS regions are TC = {1, ET}, WT = {1, 2, ET} and ET.
* ``"multiclass"`` — one class index per voxel, ``uint8 [X, Y, Z]`` with contiguous values
  ``0..K-1`` (softmax outputs). BraTS classes are background, necrotic core, edema, enhancing.
* ``"binary"`` — every foreground label merged into one class: ``uint8 [X, Y, Z]`` with 0 background and
  1 foreground, class names :data:`BINARY_CLASS_NAMES` (a 2-class softmax output).
"""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses

from alseg.core.errors import ConfigError, DataError

LABEL_MODES = ("multilabel", "multiclass", "binary")
BRATS_REGION_NAMES = ("TC", "WT", "ET")
BRATS_CLASS_NAMES = ("background", "necrotic_core", "edema", "enhancing")
BINARY_CLASS_NAMES = ("background", "foreground")
MSD_BRAIN_TUMOUR_REGIONS = {"TC": [2, 3], "WT": [1, 2, 3], "ET": [3]}
"""BraTS regions in the numbering of the Decathlon's Task01_BrainTumour."""


@dataclass(frozen=True)
class LabelScheme:
    """How the raw label values of a dataset become training targets.

    Attributes:
        name: Stable, complete description of the mapping (part of the cache key).
        values: The declared raw label values; any other value is a data error.
        class_names: One name per output channel (multilabel) or class index (multiclass).
        multilabel: Whether targets are ``uint8 [R, X, Y, Z]`` binary regions (else class
            indices ``uint8 [X, Y, Z]``).
        class_values: Single-label schemes: the label value each class index stands for when
            predictions are written back as label maps (``binary``: 0 and 1); ``None`` if unknown.
        regions: Multi-label schemes: the raw label values each channel covers (e.g. BraTS TC =
            ``(1, 4)``), from which predictions are written back as label maps (see
            :mod:`alseg.datasets.label_maps`); ``None`` if unknown.
    """

    name: str
    values: tuple[int, ...]
    class_names: tuple[str, ...]
    multilabel: bool
    transform: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)
    class_values: tuple[int, ...] | None = None
    regions: tuple[tuple[int, ...], ...] | None = None

    def convert(self, label: np.ndarray, case_id: str, file_name: str) -> np.ndarray:
        """Check a raw label map and turn it into the target.

        Args:
            label: Raw label map ``[X, Y, Z]`` (any numeric dtype).
            case_id: Case id, for error messages.
            file_name: The label file, for error messages.

        Returns:
            ``uint8 [R, X, Y, Z]`` (multilabel) or ``uint8 [X, Y, Z]`` (multiclass).

        Raises:
            DataError: The label map holds values outside :attr:`values`.
        """
        present = _present_values(label)
        unexpected = present[~np.isin(present, self.values)]
        if unexpected.size:
            shown = ", ".join(f"{value:g}" for value in unexpected[:10])
            raise DataError(
                f"Case {case_id}: label file {file_name} holds values [{shown}] outside the "
                f"declared labels {list(self.values)}."
            )
        integral = label if np.issubdtype(label.dtype, np.integer) else label.astype(np.intp)
        return self.transform(integral).astype(np.uint8)


def _present_values(label: np.ndarray) -> np.ndarray:
    """The sorted distinct values of a label map: one counting pass for the usual small non-negative integers."""
    if np.issubdtype(label.dtype, np.integer) and label.size and label.min() >= 0 and label.max() < 1 << 16:
        return np.flatnonzero(np.bincount(label.ravel(order="K")))
    return np.unique(label)


# Transforms are partials of module-level functions (not lambdas) so that datasets pickle for spawned workers.
def value_lookup(mapping: Mapping[int, int]) -> Callable[[np.ndarray], np.ndarray]:
    """A picklable map of raw label values to targets by a lookup table (values outside ``mapping`` give 0)."""
    table = np.zeros(max(mapping) + 1, dtype=np.uint8)
    for raw, target in mapping.items():
        table[raw] = target
    return partial(_apply_table, table)


def _apply_table(table: np.ndarray, label: np.ndarray) -> np.ndarray:
    return table[label]


def _check_mode(mode: str) -> None:
    if mode not in LABEL_MODES:
        raise ConfigError(f"Unknown label mode {mode!r}. Available: {', '.join(LABEL_MODES)}.")


def _binary_scheme(name: str, values: tuple[int, ...]) -> LabelScheme:
    """Every non-zero declared value → class 1 (foreground), 0 → class 0."""
    merge = value_lookup({value: int(value != 0) for value in values})
    return LabelScheme(f"{name}-binary", values, BINARY_CLASS_NAMES, False, merge, class_values=(0, 1))


def brats_label_scheme(release: str, mode: str = "multilabel") -> LabelScheme:
    """The label scheme of a BraTS release.

    Args:
        release: ``"2020"``, ``"2021"`` (enhancing = 4) or ``"2023"`` (enhancing = 3).
        mode: ``"multilabel"`` (TC, WT, ET channels via MONAI's
            ``ConvertToMultiChannelBasedOnBratsClasses``), ``"multiclass"`` (0 background,
            1 necrotic core, 2 edema, 3 enhancing) or ``"binary"`` (0 background, 1 tumour: every label merged).
    """
    _check_mode(mode)
    if release not in ("2020", "2021", "2023"):
        raise ConfigError(f"Unknown BraTS release {release!r}. Available: 2020, 2021, 2023.")
    enhancing = 3 if release == "2023" else 4
    values = (0, 1, 2, enhancing)
    name = f"brats-et{enhancing}-{mode}"
    if mode == "binary":
        return _binary_scheme(f"brats-et{enhancing}", values)
    if mode == "multilabel":
        return LabelScheme(
            name,
            values,
            BRATS_REGION_NAMES,
            True,
            ConvertToMultiChannelBasedOnBratsClasses(et_label=enhancing),
            regions=((1, enhancing), (1, 2, enhancing), (enhancing,)),
        )
    classes = value_lookup({0: 0, 1: 1, 2: 2, enhancing: 3})
    return LabelScheme(name, values, BRATS_CLASS_NAMES, False, classes, class_values=values)


def _region_transform(regions: Sequence[Sequence[int]]) -> Callable[[np.ndarray], np.ndarray]:
    return partial(_stack_regions, [list(members) for members in regions])


def _stack_regions(regions: list[list[int]], label: np.ndarray) -> np.ndarray:
    return np.stack([np.isin(label, members) for members in regions])


def decathlon_label_scheme(
    labels: Mapping[int, str], regions: Mapping[str, Sequence[int]] | None = None, mode: str | None = None
) -> LabelScheme:
    """The label scheme of a Decathlon task.

    Args:
        labels: Label value → class name, from ``dataset.json`` (includes background).
        regions: Region name → member label values, for ``"multilabel"`` targets, e.g.
            :data:`MSD_BRAIN_TUMOUR_REGIONS`.
        mode: ``"multilabel"`` (one channel per region of ``regions``), ``"multiclass"`` (the classes of
            ``labels``, values renumbered ``0..K-1`` in increasing order) or ``"binary"`` (0 background,
            1 foreground: every non-zero label merged). ``None``: ``"multilabel"`` if ``regions`` is given,
            else ``"multiclass"``.

    Raises:
        ConfigError: Unknown mode, ``regions`` missing for or given to a mode other than ``"multilabel"``, or
            regions naming undeclared or background values.
    """
    mode = mode or ("multilabel" if regions is not None else "multiclass")
    _check_mode(mode)
    values = tuple(sorted(labels))
    if mode == "multilabel" and regions is None:
        raise ConfigError("The label mode 'multilabel' needs 'regions' (region name → member label values).")
    if mode != "multilabel" and regions is not None:
        raise ConfigError(
            f"The 'regions' option gives one channel per region and needs the label mode 'multilabel'. "
            f"Got label mode {mode!r}."
        )
    if mode == "binary":
        return _binary_scheme(f"decathlon-{list(values)}", values)
    if mode == "multiclass":
        classes = value_lookup({raw: index for index, raw in enumerate(values)})
        names = tuple(labels[raw] for raw in values)
        return LabelScheme(f"decathlon-multiclass-{list(values)}", values, names, False, classes, class_values=values)
    if not regions:
        raise ConfigError("'regions' must map at least one region name to label values.")
    for region, members in regions.items():
        if not members or any(m not in labels or m == 0 for m in members):
            raise ConfigError(
                f"Region {region!r} must list declared non-background label values. Got "
                f"{list(members)!r}; declared: {list(values)}."
            )
    members = [sorted(int(m) for m in regions[name]) for name in regions]
    name = f"decathlon-regions-{json.dumps(dict(zip(regions, members, strict=True)))}"
    return LabelScheme(
        name, values, tuple(regions), True, _region_transform(members), regions=tuple(map(tuple, members))
    )
