"""The annotation unit of a volume data module and the options of patch pools, checked once.

``annotation_unit``: ``slice`` (2D slices, ``dim=2``), ``volume`` (whole volumes, ``dim=3``) or ``patch`` (boxes of
``query_patch_size`` inside the volumes, ``dim=3``); by default ``slice`` for ``dim=2`` and ``volume`` for ``dim=3``,
so configurations that name only ``dim`` keep their meaning.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alseg.core.errors import ConfigError
from alseg.core.patch_pool import PatchPool, check_max_overlap

UNITS = ("slice", "volume", "patch")
_DIM_OF_UNIT = {"slice": 2, "volume": 3, "patch": 3}


def resolve_unit(dim: int, unit: str | None) -> str:
    """The annotation unit: ``unit``, or the default of ``dim``.

    Raises:
        ConfigError: ``unit`` is unknown or does not fit ``dim`` (e.g. ``patch`` with ``dim=2``).
    """
    if unit is None:
        return "slice" if dim == 2 else "volume"
    if unit not in UNITS:
        raise ConfigError(
            f"The 'annotation_unit' option of the data module must be one of: {', '.join(UNITS)}. Got {unit!r}."
        )
    if _DIM_OF_UNIT[unit] != dim:
        raise ConfigError(
            f"The 'annotation_unit' option {unit!r} needs dim={_DIM_OF_UNIT[unit]} (and a model of that dimension). "
            f"Got dim={dim}."
        )
    return unit


def _check_sizes(name: str, value: Sequence[int] | None) -> tuple[int, int, int]:
    valid = value is not None and len(value) == 3
    valid = valid and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value)
    if not valid:
        raise ConfigError(f"The '{name}' option of the data module must be 3 integers >= 1. Got {value!r}.")
    return tuple(value)  # type: ignore[return-value]


@dataclass(frozen=True)
class PatchOptions:
    """The options of a patch pool.

    Attributes:
        patch_size: ``query_patch_size``, the box of one query ``(sx, sy, sz)``.
        stride: ``query_stride``, the grid step between candidate boxes (default: the box, a tiling).
        max_overlap: ``max_overlap``, in [0, 1).
    """

    patch_size: tuple[int, int, int]
    stride: tuple[int, int, int]
    max_overlap: float

    @classmethod
    def checked(
        cls, patch_size: Sequence[int] | None, stride: Sequence[int] | None, max_overlap: float
    ) -> "PatchOptions":
        """The options after checking them.

        Raises:
            ConfigError: A size is not 3 integers >= 1, or ``max_overlap`` is outside [0, 1) (naming the option).
        """
        size = _check_sizes("query_patch_size", patch_size)
        step = size if stride is None else _check_sizes("query_stride", stride)
        check_max_overlap(max_overlap)
        return cls(size, step, float(max_overlap))

    @property
    def grid(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """``(patch_size, stride)``, the arguments of :func:`~alseg.datasets.patch_items.grid_boxes`."""
        return self.patch_size, self.stride

    def check_fits(self, shapes: Mapping[str, Sequence[int]]) -> None:
        """Raises :class:`ConfigError` naming ``query_patch_size`` if the box is larger than a training volume."""
        for case_id, shape in sorted(shapes.items()):
            if any(s > n for s, n in zip(self.patch_size, shape, strict=True)):
                raise ConfigError(
                    f"The 'query_patch_size' option of the data module must fit in every training volume; case "
                    f"{case_id} has shape {tuple(shape)}. Got {list(self.patch_size)}."
                )

    def geometry(self, window: Sequence[int], shapes: Mapping[str, tuple[int, ...]]) -> PatchPool:
        """A :class:`PatchPool` of these options without boxes (the item sets fill them in)."""
        return PatchPool(self.patch_size, tuple(window), self.max_overlap, dict(shapes), {}, {})
