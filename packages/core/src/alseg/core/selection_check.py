"""Checks a strategy's answer before the oracle sees it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any

from alseg.core.derived_labels import DerivedLabels
from alseg.core.errors import PluginError


def check_selection(
    strategy_name: str,
    answer: Any,
    pool_ids: Collection[str],
    items_to_label: int,
) -> tuple[list[str], dict[str, Any] | None]:
    """Returns a strategy's ``(selected ids, pseudo labels)``; raises :class:`PluginError` naming what is wrong.

    Valid means: a tuple ``(ids, pseudo_labels)``; ids a list of strings, unique, all in the unlabelled pool, at most
    ``items_to_label`` of them and at least one while the pool is not empty (a strategy that selects nothing would
    never end a run that labels the whole pool); pseudo labels None or a dict keyed by further pool ids that are not
    also selected, whose values are labels or :class:`~alseg.core.derived_labels.DerivedLabels` requests that name
    their key among their targets and derive only from selected ids.
    """
    prefix = f"Strategy {strategy_name} returned"
    if not (isinstance(answer, tuple) and len(answer) == 2):
        raise PluginError(
            f"{prefix} {type(answer).__name__} {_short(answer)}; expected a tuple (ids, pseudo_labels), e.g. "
            "(ids, None)."
        )
    selected, pseudo_labels = answer
    if not isinstance(selected, list | tuple) or not all(isinstance(i, str) for i in selected):
        raise PluginError(f"{prefix} {_short(selected)} as ids; expected a list of string ids.")
    if pseudo_labels is not None and not isinstance(pseudo_labels, dict):
        raise PluginError(f"{prefix} {type(pseudo_labels).__name__} as pseudo labels; expected a dict {{id: label}}.")
    if len(selected) > items_to_label:
        raise PluginError(f"{prefix} {len(selected)} ids, but items_to_label is {items_to_label}.")
    if not selected and not pseudo_labels and pool_ids:
        raise PluginError(
            f"{prefix} no ids from a pool of {len(pool_ids)} items. A query round must label at least one item; "
            "end the run with active_learning.iterations instead."
        )
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
        _check_derived(prefix, pseudo_labels, set(selected))
    return list(selected), pseudo_labels


def _check_derived(prefix: str, pseudo_labels: dict[str, Any], selected: set[str]) -> None:
    for item_id, value in pseudo_labels.items():
        if not isinstance(value, DerivedLabels):
            continue
        if item_id not in value.targets:
            raise PluginError(f"{prefix} a derived pseudo label for {item_id!r} that does not list it as a target.")
        unlisted = sorted(set(value.targets) - set(pseudo_labels))
        if unlisted:
            raise PluginError(
                f"{prefix} a derived pseudo label whose targets are not pseudo-label keys: {_names(unlisted)}."
            )
        unselected = sorted(set(value.sources) - selected)
        if unselected:
            raise PluginError(
                f"{prefix} a pseudo label for {item_id!r} derived from ids it did not select: {_names(unselected)}. "
                "Derived labels come from the oracle's labels of the selection."
            )


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _names(ids: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
