"""Griffe extension of the alseg site: the Sphinx roles of alseg's docstrings become checked cross-references.

alseg's Google-style docstrings name other objects with Sphinx roles (``:class:`~alseg.core.query_view.QueryView```,
``:meth:`label_items```). Markdown has no such roles, so this extension rewrites each into an autorefs link,
``[`QueryView`][alseg.core.query_view.QueryView]``, resolving a relative name in the docstring's scope as Python would
(members, then the module's imports, then the enclosing objects). A name that cannot be resolved is a warning, and so
is a link whose target is not on the site (autorefs): ``mkdocs build --strict`` fails on both, so a docstring cannot
point at something that does not exist. Names of other libraries (``torch.nn.Module``) stay plain code.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|mod|data|attr|exc|obj):`(~?)([^`<>]+)`")
EXTERNAL = ("torch", "lightning", "numpy", "np", "monai", "scipy", "nibabel", "jsonargparse", "submitit", "PIL")

logger = logging.getLogger("mkdocs.plugins.alseg_roles")


class SphinxRolesToAutorefs(griffe.Extension):
    """Rewrites the Sphinx roles of every docstring into autorefs cross-references."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrites the roles of one object's docstring (runs once the object tree is complete)."""
        if obj.is_alias or obj.docstring is None or ":" not in obj.docstring.value:
            return
        obj.docstring.value = ROLE.sub(lambda match: _link(obj, match), obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Drops undocumented ``self.x = x`` attributes: the constructor's argument ``x`` documents them."""
        _drop_undocumented_instance_attributes(pkg)


def _drop_undocumented_instance_attributes(obj: griffe.Object) -> None:
    for name, member in list(obj.members.items()):
        if member.is_alias:
            continue
        echo = member.is_attribute and member.docstring is None and str(member.value) == name
        if echo and "instance-attribute" in member.labels:
            del obj.members[name]
        elif member.is_class or member.is_module:
            _drop_undocumented_instance_attributes(member)


def _link(obj: griffe.Object, match: re.Match[str]) -> str:
    short, name = match.group(1) == "~", match.group(2).strip()
    text = name.rsplit(".", 1)[-1] if short else name
    head, _, rest = name.partition(".")
    package = obj.package.name  # alseg: the documented namespace package
    if head in EXTERNAL:
        return f"`{text}`"
    if head == package:
        return f"[`{text}`][{name}]"
    path = _resolve(obj, head)
    if path is None:
        logger.warning(
            "%s: the docstring of %s names %r, which does not resolve.", obj.relative_filepath, obj.path, name
        )
        return f"`{text}`"
    path = f"{path}.{rest}" if rest else path
    if path.split(".")[0] != package or any(part.startswith("_") for part in path.split(".")):
        return f"`{text}`"  # another library's object, or a private one: not on the site
    return f"[`{text}`][{path}]"


def _resolve(obj: griffe.Object, name: str) -> str | None:
    """The path ``name`` means in ``obj``'s scope: members (inherited ones too), imports, enclosing objects."""
    try:
        return obj.resolve(name)
    except griffe.NameResolutionError:
        pass
    scope: griffe.Object | None = obj
    while scope is not None:
        if scope.is_class:
            try:
                member = scope.all_members.get(name)
            except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                member = None
            if member is not None:
                return member.path if not member.is_alias else member.target_path
        scope = scope.parent
    return None
