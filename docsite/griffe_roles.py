"""A Griffe extension: the Sphinx roles of connectpy's docstrings as links of the API reference.

The docstrings say ``:meth:`enable_health``` and ``:class:`ASGIApp```, as Python docstrings
often do; Markdown would show the role literally. Each becomes a cross-reference to the
object it names, looked up from the documented object outwards (its class, its module, the
package); a name from outside connectpy (``:func:`anyio.current_time```) or one the reference
does not show (private or undocumented) stays code, unlinked.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:meth|func|class|attr|mod|obj|data|exc|const):`~?(?P<name>[\w.]+)`")


class SphinxRoles(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = _with_links(obj.docstring.value, obj)


def _with_links(text: str, obj: griffe.Object) -> str:
    return ROLE.sub(lambda role: _link(role["name"], obj), text)


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias and isinstance(member, griffe.Object):
            found.extend(_walk(member))
    return found


def _link(name: str, obj: griffe.Object) -> str:
    scope: griffe.Object | None = obj
    while scope is not None:
        target = _lookup(scope, name.split("."))
        if target is not None:
            return f"[`{name}`][{target}]"
        scope = scope.parent
    return f"`{name}`"


def _lookup(scope: griffe.Object, parts: list[str]) -> str | None:
    current: griffe.Object | griffe.Alias = scope
    for part in parts:
        if part not in current.members:
            return None
        current = current.members[part]
        if isinstance(current, griffe.Alias):  # an import: follow it to where it is defined
            try:
                current = current.final_target
            except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                return None  # defined outside connectpy
    # The reference shows only documented, public objects: link to nothing else.
    if current.docstring is None or any(part.startswith("_") for part in current.path.split(".")):
        return None
    return current.path
