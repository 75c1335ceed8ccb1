"""Short names of models, data modules and strategies, published by packages as entry points.

A package registers a class under a short name in its ``pyproject.toml``::

    [project.entry-points."alseg.strategies"]
    entropy = "alseg.strategies.entropy:EntropyStrategy"

so that configurations can say ``strategy: entropy`` instead of the class path. Groups: ``alseg.models``,
``alseg.datasets``, ``alseg.strategies`` and ``alseg.oracles``.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from alseg.core.errors import ConfigError

#: Config section → (entry-point group, what the section holds, for messages).
SECTIONS = {
    "model": ("alseg.models", "model"),
    "data": ("alseg.datasets", "data module"),
    "strategy": ("alseg.strategies", "strategy"),
    "oracle": ("alseg.oracles", "oracle"),
}


def registered(section: str) -> dict[str, str]:
    """Returns the registered short names of a config section, mapped to class paths (``module.Class``)."""
    group, _ = SECTIONS[section]
    return {ep.name: ep.value.replace(":", ".") for ep in entry_points(group=group)}


def resolve_class_path(section: str, name: str) -> str:
    """Turns a short name into its class path; a dotted path is returned unchanged.

    Raises:
        ConfigError: ``name`` has no dot and is not registered (the message lists the registered names).
    """
    if "." in name:
        return name
    names = registered(section)
    if name in names:
        return names[name]
    _, what = SECTIONS[section]
    available = ", ".join(sorted(names)) or f"none (no package publishes entry points of {SECTIONS[section][0]})"
    raise ConfigError(
        f"Unknown {what} {name!r}. Available: {available}; or give the class_path of any importable subclass."
    )
