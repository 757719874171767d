"""The per-call context a tool can ask for by annotating a parameter with :class:`CallContext`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, List, Mapping, Optional

from snakepit_bridge import telemetry
from snakepit_bridge.sessions import NO_SESSION_MESSAGE, SessionState

if TYPE_CHECKING:
    from snakepit_bridge.host import HostClient, HostToolSpec

#: What a tool gets from ``ctx.call_host`` in a worker started without ``--host-socket``.
NO_HOST_MESSAGE = "this pool has no host tools: register them in C++ (see docs/host-tools.md)"


@dataclass(frozen=True)
class CallContext:
    """What the worker knows about the call being served.

    A tool gets it by declaring a parameter annotated ``CallContext`` (any name); that parameter
    is filled in by the worker and is not part of the tool's schema::

        @tool
        def slow(self, n: int, ctx: CallContext) -> int:
            if ctx.time_left() is not None and ctx.time_left() < 1.0:
                ...

    Attributes:
        request_id: the host's id of this call.
        tool: the name of the tool being called.
        correlation_id: the caller's correlation id (empty when none was given).
        session_id: the session the call belongs to (empty when none).
        session_moved: the session was served by another worker before this call (that worker
            died, was recycled, or was busy): the state it had there is not here, and
            :attr:`session` starts empty.
        metadata: string key/value pairs sent with the call (a read-only mapping).
        deadline: when the caller stops waiting, as a ``time.monotonic()`` value; None when the
            call has no timeout.
        worker_id: the id the host gave this worker process (``--worker-id``).

    :attr:`session` is this worker's state for the call's session (``docs/sessions.md``);
    :meth:`emit` sends a telemetry event tagged with this call's tool and request id;
    :meth:`host_tools`, :meth:`call_host` and :meth:`acall_host` (and their variants) reach the
    C++ functions the pool registered (``docs/host-tools.md``).
    """

    request_id: str = ""
    tool: str = ""
    correlation_id: str = ""
    session_id: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    deadline: Optional[float] = None
    worker_id: str = ""
    session_moved: bool = False
    _session: Optional[SessionState] = field(default=None, repr=False, compare=False)
    _host: Optional["HostClient"] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, MappingProxyType):
            object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def session(self) -> SessionState:
        """This worker's state for the call's session, a dict-like :class:`SessionState` kept
        across the session's calls on this worker (created by its first call here).

        Raises:
            RuntimeError: the call has no session (``session_id`` is empty), or this context
                was made by hand rather than by a worker or ``AdapterTestClient``.
        """
        if not self.session_id:
            raise RuntimeError(NO_SESSION_MESSAGE)
        if self._session is None:
            raise RuntimeError(f"this CallContext has session_id {self.session_id!r} but no session state: it was "
                               "not made by a worker; call the tool through AdapterTestClient.call_with(..., "
                               "session_id=...) to test session tools")
        return self._session

    def time_left(self) -> Optional[float]:
        """Seconds until the deadline (negative once it has passed), or None without one."""
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()

    def emit(self, name: str, measurements: Optional[Mapping[str, float]] = None,
             metadata: Optional[Mapping[str, str]] = None) -> bool:
        """:func:`snakepit_bridge.emit` with metadata ``tool`` and ``request_id`` of this call
        added (entries of the same keys in ``metadata`` win; the two count towards the limit of
        32 entries). Returns False when the event was dropped (buffer full) or events are off.

        Raises:
            TypeError, ValueError: as :func:`snakepit_bridge.emit`.
        """
        return telemetry.emit_with(name, measurements, metadata, {"tool": self.tool, "request_id": self.request_id})

    @property
    def has_host_tools(self) -> bool:
        """True when the pool gave this worker a host to call (``--host-socket``)."""
        return self._host is not None

    def host_tools(self) -> List["HostToolSpec"]:
        """The host tools this pool registered in C++, sorted by name (asked once per worker
        process, then cached): ``HostToolSpec(name, description, parameters, returns)``.

        Raises:
            RuntimeError: the pool has no host tools (the worker has no ``--host-socket``).
            HostToolError: the host could not be asked (``unavailable``, ``timeout``).
        """
        return self._host_client().list_tools(self.time_left())

    def call_host(self, name: str, /, **arguments: Any) -> Any:
        """Calls host tool ``name`` with keyword arguments and returns its result, blocking
        until the host answers; see :meth:`call_host_with`."""
        return self.call_host_with(name, arguments)

    def call_host_with(self, name: str, arguments: Mapping[str, Any], *, timeout_s: Optional[float] = None) -> Any:
        """Calls host tool ``name`` with the arguments as a mapping and returns its result.

        The call is bounded by this tool's deadline: the host gets the time left
        (:meth:`time_left`), or ``timeout_s`` when that is shorter, and the call fails with kind
        ``timeout`` when it runs out. Arguments and results are encoded as a tool's. The host
        also gets this call's ``worker_id``, ``request_id`` and ``session_id``.

        Raises:
            RuntimeError: the pool has no host tools (the worker has no ``--host-socket``).
            HostToolError: the host tool failed (``.kind``, ``.message`` as the host sent
                them), the time ran out, or the host could not be reached.
            ValueError: ``timeout_s`` is not positive.
        """
        return self._host_client().call_with(name, arguments, timeout_s=self._host_timeout(timeout_s),
                                             request_id=self.request_id, session_id=self.session_id)

    async def acall_host(self, name: str, /, **arguments: Any) -> Any:
        """:meth:`call_host` for ``async def`` tools: ``await ctx.acall_host("name", x=1)``.
        The event loop keeps serving other calls meanwhile."""
        return await self.acall_host_with(name, arguments)

    async def acall_host_with(self, name: str, arguments: Mapping[str, Any], *,
                              timeout_s: Optional[float] = None) -> Any:
        """:meth:`call_host_with` for ``async def`` tools: the call runs in a helper thread
        (``asyncio.to_thread``), its time limit taken when it starts there."""
        self._host_client()  # the RuntimeError at once, without a thread
        return await asyncio.to_thread(self.call_host_with, name, arguments, timeout_s=timeout_s)

    async def ahost_tools(self) -> List["HostToolSpec"]:
        """:meth:`host_tools` for ``async def`` tools (the first, uncached, request runs in a
        helper thread)."""
        return await asyncio.to_thread(self.host_tools)

    def _host_client(self) -> "HostClient":
        if self._host is None:
            raise RuntimeError(NO_HOST_MESSAGE)
        return self._host

    def _host_timeout(self, timeout_s: Optional[float]) -> Optional[float]:
        """The time a host call may take: this tool's time left, or ``timeout_s`` if shorter."""
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s!r}")
        left = self.time_left()
        if left is None:
            return timeout_s
        return left if timeout_s is None else min(left, timeout_s)
