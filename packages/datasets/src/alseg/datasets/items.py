"""Item ids of a cached dataset and reading one item's arrays.

An item is a whole case (``dim=3``, id ``"<case_id>"``) or one 2D slice of it (``dim=2``, id
``"<case_id>:<slice_index>"``). Slices are taken along ``axis`` of the spatial axes
``(X, Y, Z)``; the default ``axis=2`` (the last voxel axis) gives axial slices, see
:mod:`alseg.datasets.volumes`. Item ids are the identity of items everywhere in alseg, never a
position in a dataset.
"""

from collections.abc import Sequence

import numpy as np

from alseg.core.errors import ConfigError, DataError
from alseg.datasets.cache import CaseMeta, VolumeCache

AXIAL = 2


def _check(dim: int, axis: int) -> None:
    if dim not in (2, 3):
        raise ConfigError(f"'dim' must be 2 or 3. Got {dim!r}.")
    if axis not in (0, 1, 2):
        raise ConfigError(f"The slice 'axis' must be 0, 1 or 2. Got {axis!r}.")


def format_item_id(case_id: str, slice_index: int | None = None) -> str:
    """The id of a whole case (``slice_index=None``) or of one of its slices."""
    return case_id if slice_index is None else f"{case_id}:{slice_index}"


def parse_item_id(item_id: str) -> tuple[str, int | None]:
    """``(case_id, slice_index)`` of an item id; ``slice_index`` is ``None`` for a whole case.

    Raises:
        ValueError: The id is malformed (e.g. ``"case:x"``).
    """
    case_id, separator, index = item_id.rpartition(":")
    if not separator:
        return item_id, None
    if not case_id or not index.isdigit():
        raise ValueError(f"Malformed item id {item_id!r}; expected '<case_id>:<slice_index>'.")
    return case_id, int(index)


def item_ids(metas: Sequence[CaseMeta], dim: int, axis: int = AXIAL, skip_empty: bool = False) -> list[str]:
    """Item ids of cached cases, case by case, slices in increasing order.

    Args:
        metas: Metadata of the cached cases.
        dim: 2 for slice items, 3 for whole-case items.
        axis: Spatial axis the slices are taken along (``dim=2`` only).
        skip_empty: Leave out slices whose image is entirely 0 (outside the brain), judged from
            the image, never from the label.

    Returns:
        Unique item ids.
    """
    _check(dim, axis)
    ids = []
    for meta in metas:
        if ":" in meta.case_id:
            raise DataError(f"Case {meta.case_id}: case ids must not contain ':'.")
        if dim == 3:
            ids.append(meta.case_id)
            continue
        slices = meta.nonempty_slices[axis] if skip_empty else range(meta.shape[axis])
        ids.extend(format_item_id(meta.case_id, index) for index in slices)
    return ids


def _take(array: np.ndarray, slice_index: int | None, axis: int, copy: bool = True) -> np.ndarray:
    """Copy (or, without ``copy``, view) of the whole array, or of one slice along spatial ``axis`` (the last 3)."""
    if slice_index is None:
        return np.ascontiguousarray(array) if copy else array
    array_axis = array.ndim - 3 + axis
    if not 0 <= slice_index < array.shape[array_axis]:
        raise IndexError(f"Slice {slice_index} is out of range for axis {axis} of size {array.shape[array_axis]}.")
    # Basic indexing gives a view, so only the slice is read from a memory map (np.take would
    # first copy the whole array into C order).
    view = array[(slice(None),) * array_axis + (slice_index,)]
    return np.ascontiguousarray(view) if copy else view


def read_item_image(cache: VolumeCache, item_id: str, axis: int = AXIAL) -> np.ndarray:
    """The image of one item, read from the cache without decoding NIfTI.

    Returns:
        ``float32 [C, H, W]`` for a slice item, ``float32 [C, X, Y, Z]`` for a case item.
    """
    case_id, slice_index = parse_item_id(item_id)
    return _take(cache.image(case_id), slice_index, axis)


def read_item_label(cache: VolumeCache, item_id: str, axis: int = AXIAL, copy: bool = True) -> np.ndarray:
    """The target of one item, as stored in the cache.

    Args:
        cache: The cache.
        item_id: A case or slice id.
        axis: The slicing axis of slice ids.
        copy: Read it into memory; else the memory-mapped view (read on use).

    Returns:
        Multilabel ``uint8 [R, H, W]`` / ``[R, X, Y, Z]`` or multiclass ``uint8 [H, W]`` /
        ``[X, Y, Z]``.
    """
    case_id, slice_index = parse_item_id(item_id)
    return _take(cache.label(case_id), slice_index, axis, copy)
