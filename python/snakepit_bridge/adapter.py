"""``BaseAdapter``: the class a Python adapter subclasses, and the discovery of its tools."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from snakepit_bridge import tools as _tools
from snakepit_bridge.tools import ToolDef, ToolOptions, ToolSpec

if TYPE_CHECKING:
    from snakepit_bridge.sessions import SessionState

_RESERVED = frozenset({"preload", "setup", "teardown", "describe", "on_session_opened", "on_session_closed"})
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

    @classmethod
    def preload(cls) -> None:
        """Runs once per class, before any worker exists, in a pool with ``preload = true``.

        Load what every worker shares read-only here (model weights, indexes) and keep it on the
        class: the pool's fork server runs this once, and each worker forked from it shares those
        pages with the others until it writes to them. Must not start threads (nor libraries
        that do, e.g. a BLAS pool): a forked process gets only the thread that forked it, so the
        fork server refuses to start when it sees a second thread. Per-worker state (connections,
        sockets, anything opened) belongs in :meth:`setup`, which still runs in each worker.
        Without a fork server (a plain pool, or a worker started while the pool's fork server
        restarts) it runs in the worker itself, before the instance is created.
        """

    def setup(self) -> None:
        """Runs once in the worker before the first call. A failure stops the worker's start."""

    def teardown(self) -> None:
        """Runs once at a graceful stop, after the last call has finished (and after
        :meth:`on_session_closed` for the sessions still open, reason ``"stopping"``)."""

    def on_session_opened(self, session_id: str, state: "SessionState") -> None:
        """Runs when this worker creates a session's state: at the first call carrying the
        session id here, before that call's tool runs; also when the session moved here
        (``state.moved`` is then True). Fill ``state`` with what the session needs. Runs in a
        tool thread, taking a slot like a call; an exception is logged to stderr and the call
        goes on. See ``docs/sessions.md``.
        """

    def on_session_closed(self, session_id: str, reason: str, state: "Optional[SessionState]") -> None:
        """Runs once for each session state that leaves this worker, after the session's calls
        in flight here have finished: release what ``state`` holds.

        ``reason`` is ``"closed"`` (the caller closed it), ``"expired"`` (unused for the pool's
        session TTL), ``"moved"`` (the host routes it to another worker), ``"stopping"`` (the
        worker stops), or ``"evicted"`` (more than ``--max-sessions`` sessions here). Runs in a
        tool thread, taking a slot like a call (at a stop: in the main thread, before
        :meth:`teardown`). An exception is logged to stderr and the worker goes on. ``state`` is
        always given by this version.
        """

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
