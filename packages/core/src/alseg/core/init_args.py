"""What a plugin object was built with: its resolved constructor arguments, as plain data.

The three abstractions record the arguments of every instance (after defaults) when it is created, so that a run
built in Python is identified by everything its objects were configured with, as a run built from a configuration
file is by the resolved configuration: a resume with another learning rate or aggregation is refused.
"""

from __future__ import annotations

import dataclasses
import inspect
from enum import Enum
from pathlib import PurePath
from typing import Any


class RecordsInitArgs:
    """Mixin that keeps the constructor arguments of an instance (its most derived ``__init__``, defaults applied)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # noqa: D102 - documented on the class
        instance = super().__new__(cls)
        try:
            bound = inspect.signature(cls.__init__).bind(instance, *args, **kwargs)
        except TypeError:  # __init__ raises the real error (or the object is being unpickled)
            arguments = None
        else:
            bound.apply_defaults()
            arguments = _flatten(bound.signature, dict(list(bound.arguments.items())[1:]))
        object.__setattr__(instance, "_alseg_init_args", arguments)
        return instance


def describe(obj: Any) -> dict[str, Any]:
    """Returns ``{"class_path": ..., "init_args": {...}}`` of an object as plain (YAML-safe) data."""
    described: dict[str, Any] = {"class_path": _class_path(type(obj))}
    arguments = getattr(obj, "_alseg_init_args", None)
    if arguments is not None:
        described["init_args"] = {name: plain(value) for name, value in arguments.items()}
    return described


def plain(value: Any) -> Any:
    """Returns ``value`` as YAML-safe data: objects become their description, unknown types their class path."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, type):
        return _class_path(value)
    if dataclasses.is_dataclass(value):
        fields = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"class_path": _class_path(type(value)), "init_args": fields}
    return describe(value)


def init_defaults(cls: type) -> dict[str, Any]:
    """The defaults of the constructor parameters of ``cls`` and of its bases (which its ``**kwargs`` may fill), plain.

    A class's own default wins over a base's.
    """
    defaults: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        parameters = inspect.signature(init).parameters.values()
        defaults |= {p.name: plain(p.default) for p in parameters if p.default is not inspect.Parameter.empty}
    return defaults


def _flatten(signature: inspect.Signature, arguments: dict[str, Any]) -> dict[str, Any]:
    """Merges a ``**kwargs`` parameter's entries into the named arguments."""
    flat = {}
    for name, value in arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            flat.update(value)
        else:
            flat[name] = value
    return flat


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
