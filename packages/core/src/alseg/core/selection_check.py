"""Checks a strategy's answer before the oracle sees it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from alseg.core.errors import PluginError


def check_selection(
    strategy_name: str,
    selected: Sequence[str],
    pseudo_labels: dict[str, Any] | None,
    pool_ids: Collection[str],
    items_to_label: int,
) -> None:
    """Raises :class:`PluginError` naming the offending ids unless the selection is valid.

    Valid means: a list of string ids, unique, all in the unlabelled pool, at most ``items_to_label`` of them; pseudo
    labels (if any) are keyed by further pool ids that are not also selected.
    """
    prefix = f"Strategy {strategy_name} returned"
    if not isinstance(selected, list | tuple) or not all(isinstance(i, str) for i in selected):
        raise PluginError(f"{prefix} {selected!r}; expected a list of string ids.")
    if len(selected) > items_to_label:
        raise PluginError(f"{prefix} {len(selected)} ids, but items_to_label is {items_to_label}.")
    duplicates = sorted(i for i, n in Counter(selected).items() if n > 1)
    if duplicates:
        raise PluginError(f"{prefix} duplicate ids: {_names(duplicates)}.")
    pool = set(pool_ids)
    unknown = sorted(set(selected) - pool)
    if unknown:
        raise PluginError(f"{prefix} ids that are not in the unlabelled pool: {_names(unknown)}.")
    if pseudo_labels:
        bad = sorted((set(pseudo_labels) - pool) | (set(pseudo_labels) & set(selected)))
        if bad:
            raise PluginError(
                f"{prefix} pseudo labels for ids that are not in the pool or are also selected: {_names(bad)}."
            )


def _names(ids: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
