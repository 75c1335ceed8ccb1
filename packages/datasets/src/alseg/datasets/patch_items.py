"""Patch items: ids of boxes inside cached volumes, and the grid of candidate boxes of a volume.

A patch id names the case and the box: ``"<case_id>:<x0>-<y0>-<z0>:<sx>-<sy>-<sz>"``, e.g.
``"BraTS2021_00042:16-0-8:32-32-32"`` is the box of 32 x 32 x 32 voxels whose first voxel is ``(16, 0, 8)`` in the
cached ``(X, Y, Z)`` voxel order (see :mod:`alseg.datasets.volumes`). The id holds the whole box, so a ledger's
``selected_ids`` replay on resume without any other state, and the size is explicit so that runs of different
``query_patch_size`` never share an id. Case ids contain no ``':'`` (:func:`~alseg.datasets.items.item_ids`), so the
two ``':'`` separate the parts unambiguously.
"""

from collections.abc import Sequence
from itertools import product

from alseg.core.patch_pool import Box

_SEPARATOR = ":"


def format_patch_id(box: Box) -> str:
    """The id of a box: ``"<case_id>:<x0>-<y0>-<z0>:<sx>-<sy>-<sz>"``."""
    return _SEPARATOR.join((box.case_id, "-".join(map(str, box.start)), "-".join(map(str, box.size))))


def parse_patch_id(item_id: str) -> Box | None:
    """The box a patch id names, or None if ``item_id`` is not a patch id (a slice or volume id).

    Raises:
        ValueError: The id has a patch id's shape but malformed numbers (e.g. ``"case:1-2:3-3-3"``).
    """
    parts = item_id.split(_SEPARATOR)
    if len(parts) != 3 or "-" not in parts[1]:
        return None
    case_id, start, size = parts
    numbers = [field.split("-") for field in (start, size)]
    if not case_id or any(len(n) != 3 or not all(v.isdigit() for v in n) for n in numbers):
        raise ValueError(f"Malformed patch id {item_id!r}; expected '<case_id>:<x0>-<y0>-<z0>:<sx>-<sy>-<sz>'.")
    first, extent = (tuple(int(v) for v in n) for n in numbers)
    if min(extent) < 1:
        raise ValueError(f"Malformed patch id {item_id!r}: box sizes must be >= 1.")
    return Box(case_id, first, extent)


def grid_starts(length: int, size: int, stride: int) -> list[int]:
    """First voxels of boxes of ``size`` along one axis of ``length``, every ``stride`` voxels.

    The last box ends at the volume's border (it may overlap its neighbour), so every voxel lies in some box.
    """
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def grid_boxes(case_id: str, shape: Sequence[int], size: Sequence[int], stride: Sequence[int]) -> list[Box]:
    """The candidate boxes of one volume, in ``(x0, y0, z0)`` order (``size`` fits ``shape``, checked before)."""
    axes = [grid_starts(n, s, t) for n, s, t in zip(shape, size, stride, strict=True)]
    return [Box(case_id, tuple(start), tuple(size)) for start in product(*axes)]
