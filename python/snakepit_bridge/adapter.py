"""``BaseAdapter``: the class a Python adapter subclasses, and the discovery of its tools."""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Tuple

from snakepit_bridge import tools as _tools
from snakepit_bridge.tools import ToolDef, ToolOptions, ToolSpec

_RESERVED = frozenset({"setup", "teardown", "describe"})
_CACHE = "_snakepit_tools_"


class BaseAdapter:
    """Base class of every adapter: subclass it and decorate methods with ``@tool``.

    A worker process creates exactly one instance, calls :meth:`setup` once before serving
    (load models and open connections there, not in ``__init__`` work that may fail silently),
    and :meth:`teardown` once at a graceful stop. Tools are found across the class hierarchy;
    a subclass that overrides a tool method keeps it a tool.

    Sync tools may run in several threads at once when the worker's concurrency is above 1:
    guard shared state accordingly. An adapter meant for thread-profile pools derives from
    ``snakepit_bridge.ThreadSafeAdapter`` instead.
    """

    def setup(self) -> None:
        """Runs once in the worker before the first call. A failure stops the worker's start."""

    def teardown(self) -> None:
        """Runs once at a graceful stop, after the last call has finished."""

    @classmethod
    def describe(cls) -> List[ToolSpec]:
        """The specs of this adapter's tools, sorted by name.

        Raises:
            TypeError: a tool's signature cannot be served (the message says which and why).
        """
        return [definition.spec for definition in tool_table(cls).values()]


def tool_table(cls: type) -> Dict[str, ToolDef]:
    """The tools of an adapter class by name, sorted (built once per class, then cached).

    Raises:
        TypeError: a tool cannot be served, or two tools share a name.
    """
    cached = cls.__dict__.get(_CACHE)
    if cached is not None:
        return cached
    found: Dict[str, Tuple[type, Any, ToolOptions]] = {}
    for klass in reversed(cls.__mro__):
        for attribute, member in vars(klass).items():
            options = _tools.options_of(member)
            if options is not None:
                found[attribute] = (klass, member, options)
            elif attribute in found:
                if inspect.isfunction(member) or isinstance(member, (staticmethod, classmethod)):
                    found[attribute] = (klass, member, found[attribute][2])  # override stays a tool
                else:
                    del found[attribute]  # e.g. `old_tool = None` hides an inherited tool
    table: Dict[str, ToolDef] = {}
    reserved = getattr(cls, "_snakepit_reserved_", frozenset())
    for attribute, (klass, member, options) in found.items():
        owner = f"{klass.__module__}.{klass.__qualname__}"
        if attribute in _RESERVED:
            raise TypeError(f"{owner}.{attribute}: '{attribute}' is a BaseAdapter method and cannot be a tool")
        if attribute in reserved:
            raise TypeError(f"{owner}.{attribute}: '{attribute}' belongs to ThreadSafeAdapter and cannot be a tool")
        definition = _tools.build(attribute, member, options, owner)
        name = definition.spec.name
        if name in table:
            raise TypeError(
                f"{owner}: two tools are named '{name}' (methods '{table[name].attribute}' and '{attribute}')"
            )
        table[name] = definition
    table = dict(sorted(table.items()))
    setattr(cls, _CACHE, table)
    return table
