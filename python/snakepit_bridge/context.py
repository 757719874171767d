"""The per-call context a tool can ask for by annotating a parameter with :class:`CallContext`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Optional

from snakepit_bridge import telemetry


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
        metadata: string key/value pairs sent with the call.
        deadline: when the caller stops waiting, as a ``time.monotonic()`` value; None when the
            call has no timeout.
        worker_id: the id the host gave this worker process (``--worker-id``).

    :meth:`emit` sends a telemetry event tagged with this call's tool and request id.
    """

    request_id: str = ""
    tool: str = ""
    correlation_id: str = ""
    session_id: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    deadline: Optional[float] = None
    worker_id: str = ""

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
