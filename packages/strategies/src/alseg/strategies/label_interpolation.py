"""Pseudo-labels of the slices between two labelled slices, interpolated from the two end masks.

Inner slice ``j`` (1..count) of a block sits at the fraction ``t = j / (count + 1)`` from the top slice (t = 0) to
the bottom one (t = 1). Two methods:

``signed_distance`` (default): per class, the signed distance map ``s = edt(outside) - edt(inside)`` (pixel units,
negative inside) of each end mask is blended linearly, ``f = (1 - t)·s_top + t·s_bottom``; the class is inside where
``f < 0``. This reproduces the top mask at t = 0 and the bottom one at t = 1, and every pixel changes membership at
most once, so an inner mask always contains the intersection of the end masks and lies inside their union.

- A class absent in both ends is absent in every inner slice.
- A class present in one end only erodes to nothing at the midpoint: the empty end gets the constant field ``+m``,
  with ``m`` the maximal depth of the present mask, so ``f = (1 - t)·s + t·m`` keeps the pixels deeper than
  ``m·t / (1 - t)`` and none from t = 0.5 on.
- A class present in both ends whose masks share no pixel is treated as present in one end only, twice, and the two
  results are united (minimum of the two fields): the top mask shrinks away by the midpoint, the bottom one grows from
  it. Whether the masks overlap is decided for the whole mask, not per connected component.
- A mask filling the whole slice has its depth measured to beyond the slice's border.
- Single-label: a pixel inside several classes' interpolated masks gets the class of the lowest field (deepest
  inside); ties go to the lower class index; background where no field is < 0. (Only the constant fields of the
  two rules above make masks compete: the fields of two classes that overlap themselves across the ends sum to >= 0.)
- Multi-label: channels are interpolated independently, so nested regions (BraTS TC ⊂ WT) need not nest exactly.

``morphological_contour``: ITK's ``MorphologicalContourInterpolator`` (Albu et al. 2008; extra
``alseg-strategies[itk]``) along the stacking axis, with both end slices declared labelled and ITK's other defaults
(heuristic alignment, distance transform, extrapolation). Every multi-label channel and every single-label class runs
as a binary image of its own (ITK 5.4's filter corrupts the heap on images with several labels); single-label
overlaps go to the lower class index. Unlike ``signed_distance``, ITK extrapolates a class present in one end only as
a region that shrinks towards the other end and vanishes only there, and it moves non-overlapping masks of one class
across the block by aligning them instead of shrinking one and growing the other. Its inner slices are recursive
median contours, so an odd ``count`` (a middle slice) suits it best.
"""

from types import ModuleType

import numpy as np
from scipy.ndimage import distance_transform_edt

from alseg.core.errors import ConfigError, DataError

METHODS = ("signed_distance", "morphological_contour")


def interpolate_labels(
    top: np.ndarray,
    bottom: np.ndarray,
    count: int,
    *,
    multi_label: bool,
    num_classes: int,
    method: str = "signed_distance",
) -> list[np.ndarray]:
    """Labels of the `count` slices strictly between two labelled slices, in order from top to bottom.

    Args:
        top: The top end's label, shaped like a training item's label: multi-label uint8/bool ``[C, H, W]`` binary
            channels; single-label integer ``[1, H, W]`` class indices in ``[0, num_classes)``, 0 = background.
        bottom: The bottom end's label, like ``top``.
        count: Number of inner slices (>= 0). Inner slice ``j`` (1..count) sits at ``t = j / (count + 1)``.
        multi_label: Which of the two label formats the ends have.
        num_classes: ``C``, the number of channels (multi-label) or classes including background (single-label).
        method: One of :data:`METHODS` (see the module docstring).

    Returns:
        ``count`` arrays shaped like ``top``: uint8 ``[C, H, W]`` (multi-label) or int64 ``[1, H, W]``
        (single-label).

    Raises:
        ConfigError: Unknown ``method``, or ``morphological_contour`` without ITK installed.
        ValueError: Ends of different or wrong shapes, or ``count < 0``.
        DataError: Single-label class indices outside ``[0, num_classes)``.
    """
    if method not in METHODS:
        raise ConfigError(f"Unknown label interpolation method {method!r}. Available: {', '.join(METHODS)}.")
    _check_ends(top, bottom, count, multi_label, num_classes)
    if count == 0:
        return []
    if method == "morphological_contour":
        return _morphological_contour(top, bottom, count, multi_label)
    return _signed_distance_labels(top, bottom, np.arange(1, count + 1) / (count + 1), multi_label, num_classes)


def _check_ends(top: np.ndarray, bottom: np.ndarray, count: int, multi_label: bool, num_classes: int) -> None:
    channels = num_classes if multi_label else 1
    if top.shape != bottom.shape or top.ndim != 3 or top.shape[0] != channels:
        raise ValueError(
            f"The end labels must both have the shape [{channels}, H, W] ({num_classes=}, {multi_label=}). "
            f"Got {top.shape} and {bottom.shape}."
        )
    if count < 0:
        raise ValueError(f"The number of inner slices must be >= 0. Got {count}.")
    if not multi_label and (min(top.min(), bottom.min()) < 0 or max(top.max(), bottom.max()) >= num_classes):
        found = sorted(set(np.unique(top).tolist()) | set(np.unique(bottom).tolist()))
        raise DataError(f"Class indices must be in [0, {num_classes - 1}]. Got values {found}.")


def _signed_distance_labels(
    top: np.ndarray, bottom: np.ndarray, ts: np.ndarray, multi_label: bool, num_classes: int
) -> list[np.ndarray]:
    """Labels at the fractions ``ts`` ``[N]`` (any values in [0, 1]) between the ends, by signed distances."""
    if multi_label:
        fields = _fields(top.astype(bool), bottom.astype(bool), ts)
        return list((fields < 0).astype(np.uint8))
    classes = np.arange(1, num_classes)[:, None, None]
    fields = _fields(top[0] == classes, bottom[0] == classes, ts)
    background = np.zeros((len(ts), 1, *top.shape[1:]))
    # Background is class 0 with the field 0: it wins where no field is < 0; argmin picks the lower index on ties.
    return list(np.argmin(np.concatenate([background, fields], axis=1), axis=1)[:, None].astype(np.int64))


def _fields(top: np.ndarray, bottom: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Blended fields ``[N, K, H, W]`` of end masks ``[K, H, W]`` at the fractions ``ts`` ``[N]``.

    A class's field is < 0 exactly where it is inside; it is +inf outside the bounding box of the class's two end
    masks, where it is never < 0.
    """
    fields = [_class_field(a, b, ts) for a, b in zip(top, bottom, strict=True)]
    return np.stack(fields, axis=1) if fields else np.empty((len(ts), 0, *top.shape[1:]))


def _class_field(top: np.ndarray, bottom: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Field ``[N, H, W]`` of one class's end masks ``[H, W]``, computed within their bounding box only."""
    field = np.full((len(ts), *top.shape), np.inf)
    union = top | bottom
    if union.any():
        box = _grown_bounding_box(union)
        field[:, box[0], box[1]] = _blend(top[box], bottom[box], ts)
    return field


def _grown_bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    """Bounding box of a non-empty mask ``[H, W]``, grown by one pixel within the slice.

    Within it, the distance of every pixel to the mask, and of every mask pixel to the outside, is that of the
    whole slice: the nearest pixel is inside the box, or on its outer ring of outside pixels.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2)


def _blend(top: np.ndarray, bottom: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Field ``[N, h, w]`` at ``ts`` of end masks ``[h, w]`` of which at least one is non-empty."""
    t = ts[:, None, None]
    if (top & bottom).any():
        return (1 - t) * _signed_distance(top) + t * _signed_distance(bottom)
    one_sided = []  # Each present end erodes to nothing at the midpoint against the constant field of its depth.
    if top.any():
        s = _signed_distance(top)
        one_sided.append((1 - t) * s - t * s.min())
    if bottom.any():
        s = _signed_distance(bottom)
        one_sided.append(-(1 - t) * s.min() + t * s)
    return np.min(one_sided, axis=0)


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed Euclidean distance ``[H, W]`` of a non-empty mask ``[H, W]``: < 0 inside, > 0 outside."""
    if mask.all():  # No outside pixel to measure the depth to: take the slice's surroundings as outside.
        return -distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    return distance_transform_edt(~mask) - distance_transform_edt(mask)


def _morphological_contour(top: np.ndarray, bottom: np.ndarray, count: int, multi_label: bool) -> list[np.ndarray]:
    itk = _import_itk()
    if multi_label:
        channels = [_itk_inner(itk, a != 0, b != 0, count) for a, b in zip(top, bottom, strict=True)]
        return list(np.stack(channels, axis=1).astype(np.uint8))
    labels = np.zeros((count, *top.shape), np.int64)
    for k in np.setdiff1d(np.union1d(top, bottom), [0])[::-1]:  # Descending: the lower class index wins overlaps.
        labels[:, 0][_itk_inner(itk, top[0] == k, bottom[0] == k, count)] = k
    return list(labels)


def _import_itk() -> ModuleType:
    try:
        import itk

        available = hasattr(itk, "MorphologicalContourInterpolator")  # itk loads its filters lazily, on access
    except ImportError:
        available = False
    if not available:
        raise ConfigError(
            "Label interpolation 'morphological_contour' needs ITK's MorphologicalContourInterpolator, "
            "which is not installed: pip install 'alseg-strategies[itk]'."
        )
    return itk


def _itk_inner(itk: ModuleType, top: np.ndarray, bottom: np.ndarray, count: int) -> np.ndarray:
    """Inner masks ``[count, H, W]`` (bool) of ITK's interpolation between two binary masks ``[H, W]``."""
    if not (top.any() or bottom.any()):
        return np.zeros((count, *top.shape), bool)
    volume = np.zeros((count + 2, *top.shape), np.uint8)
    volume[0], volume[-1] = top, bottom
    interpolator = itk.MorphologicalContourInterpolator.New(itk.image_from_array(volume))
    interpolator.SetAxis(2)  # ITK orders axes (x, y, z): numpy's stacking axis 0 is ITK's axis 2.
    # Declare both end slices labelled: ITK's own detection misses masks one pixel thin, and empty ends.
    interpolator.SetUseCustomSlicePositions(True)
    interpolator.SetLabeledSliceIndices(2, 1, [0, count + 1])
    interpolator.Update()
    return itk.array_from_image(interpolator.GetOutput())[1:-1] != 0
