"""The per-call context a tool can ask for by annotating a parameter with :class:`CallContext`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional

from snakepit_bridge import telemetry
from snakepit_bridge.sessions import NO_SESSION_MESSAGE, SessionState


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
    :meth:`emit` sends a telemetry event tagged with this call's tool and request id.
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
