"""Telemetry events from Python code to the host, through one bounded buffer per process.

Adapters call :func:`emit` (or ``ctx.emit`` on a :class:`~snakepit_bridge.CallContext`) from
any thread, inside or outside a tool call::

    from snakepit_bridge import emit

    emit("cache.miss", {"bytes": 4096}, {"table": "users"})

The event waits in the buffer until the worker's next ``Execute`` reply or ``Ping`` reply
carries it to the host, which puts it on its telemetry bus as ``python.<name>`` (adding the
pool, the worker and the pid). A reply carries at most :data:`MAX_EVENTS_PER_BATCH` events (and
at most :data:`MAX_BATCH_BYTES` of them); the rest wait for the next one. When the buffer is
full, a new event is dropped and counted (:func:`dropped_total`, sent with every reply once
non-zero): ``emit`` never blocks and never grows memory without bound.

Invalid input (a name that is not a short identifier, too many entries, a measurement that is
not a finite number, ...) is a bug of the caller and raises ``TypeError`` or ``ValueError`` at
the call site, whether events are enabled or not.

Only the standard library is imported here; the wire module is imported when a batch is built.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Mapping, NamedTuple, Optional, Tuple

if TYPE_CHECKING:
    from snakepit_bridge._wire import bridge_pb2 as pb

__all__ = [
    "DEFAULT_EVENT_BUFFER", "MAX_EVENTS_PER_BATCH", "MAX_EVENT_BYTES", "MAX_BATCH_BYTES", "MAX_NAME_CHARS",
    "MAX_KEY_CHARS", "MAX_MEASUREMENTS", "MAX_METADATA", "MAX_METADATA_VALUE_CHARS", "NAME_PATTERN", "Event",
    "emit", "emit_with", "configure", "capacity", "drain", "attach", "dropped_total", "pending", "snapshot",
]

#: Events the buffer holds by default (``--event-buffer``); more are dropped and counted.
DEFAULT_EVENT_BUFFER = 1024

#: The most events one reply carries; the rest wait for the next reply or ping.
MAX_EVENTS_PER_BATCH = 256

#: The most encoded bytes of one event. An event within the other limits in ASCII text is at
#: most about 42 KiB; longer non-ASCII text can exceed it, and is refused.
MAX_EVENT_BYTES = 48 * 1024

#: The most encoded bytes of events one reply carries (so one event always fits). Keeps a reply
#: within the room gRPC's message limits leave around the payload (64 KiB).
MAX_BATCH_BYTES = 48 * 1024

#: The longest event name; names match :data:`NAME_PATTERN`.
MAX_NAME_CHARS = 128

#: The longest measurement or metadata key.
MAX_KEY_CHARS = 128

#: The most measurements, and the most metadata entries, one event may have.
MAX_MEASUREMENTS = 32
MAX_METADATA = 32

#: The longest metadata value.
MAX_METADATA_VALUE_CHARS = 1024

#: What an event name may contain: letters, digits, ``_ . : -``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.:-]+")

# An upper bound of the bytes an event adds to a batch, beyond its strings' UTF-8 bytes: tags,
# lengths (up to 3 bytes each, as strings are short) and fixed-size fields.
_EVENT_OVERHEAD = 4 + 3 + 11  # the event's tag and length, the name's tag and length, unix_ns
_MEASUREMENT_OVERHEAD = 4 + 3 + 9  # entry tag and length, key tag and length, value tag and double
_METADATA_OVERHEAD = 4 + 3 + 3  # entry tag and length, key tag and length, value tag and length


class Event(NamedTuple):
    """One event as emitted: what :func:`snapshot` and ``AdapterTestClient.events()`` return."""

    name: str
    measurements: Dict[str, float]
    metadata: Dict[str, str]
    unix_ns: int  # when it was emitted (``time.time_ns()``)


class _Buffer:
    """The process-wide buffer. ``news`` is true while there is something to report (events, or
    a non-zero drop count); it is read without the lock, so a reply with nothing to report
    costs one attribute read."""

    def __init__(self, capacity: int) -> None:
        self.lock = threading.Lock()
        self.events: Deque[Tuple[Event, int]] = deque()  # (event, its bytes in a batch, at most)
        self.capacity = capacity
        self.dropped = 0
        self.news = False


_buffer = _Buffer(DEFAULT_EVENT_BUFFER)


def emit(name: str, measurements: Optional[Mapping[str, float]] = None,
         metadata: Optional[Mapping[str, str]] = None) -> bool:
    """Queues an event for the host; callable from any thread.

    Args:
        name: what happened, e.g. ``"cache.miss"``: 1 to 128 characters out of letters, digits
            and ``_ . : -``. The host publishes it as ``python.<name>``.
        measurements: up to 32 numbers by key (int or float, not bool; finite), sent as doubles.
        metadata: up to 32 strings by key (values up to 1024 characters).

    Returns:
        True when the event was queued; False when it was dropped because the buffer is full
        (the drop is counted and reported to the host), or when events are disabled
        (``configure(0)``, ``--event-buffer 0``; nothing is counted then).

    Raises:
        TypeError, ValueError: the name, a key or a value is not allowed (the message says
            which and what to change). Nothing is queued.
    """
    return emit_with(name, measurements, metadata)


def emit_with(name: str, measurements: Optional[Mapping[str, float]], metadata: Optional[Mapping[str, str]],
              defaults: Optional[Mapping[str, str]] = None) -> bool:
    """:func:`emit` with default metadata entries, which the caller's own entries override
    (``CallContext.emit`` adds ``tool`` and ``request_id`` this way). The defaults count towards
    :data:`MAX_METADATA`."""
    _check_name(name)
    size = _EVENT_OVERHEAD + _text_bytes(name, "event name")
    numbers: Dict[str, float] = {}
    if measurements is not None:
        _check_mapping(measurements, "measurements", MAX_MEASUREMENTS)
        for key, value in measurements.items():
            size += _MEASUREMENT_OVERHEAD + _check_key(key, "measurements")
            numbers[key] = _check_number(key, value)
    texts: Dict[str, str] = dict(defaults) if defaults else {}
    if metadata is not None:
        _check_mapping(metadata, "metadata", MAX_METADATA)
        texts.update(metadata)
    if len(texts) > MAX_METADATA:
        added = ", ".join(repr(key) for key in defaults or ())
        raise ValueError(f"metadata has {len(texts)} entries, counting the default ones ({added}); at most "
                         f"{MAX_METADATA} are allowed: leave out some")
    for key, value in texts.items():
        size += _METADATA_OVERHEAD + _check_key(key, "metadata") + _check_text(key, value)
    if size > MAX_EVENT_BYTES:
        raise ValueError(f"event {name!r} takes {size} bytes encoded, over the limit of {MAX_EVENT_BYTES}: "
                         "send less metadata")
    event = Event(name, numbers, texts, time.time_ns())
    buffer = _buffer
    with buffer.lock:
        if buffer.capacity == 0:
            return False
        if len(buffer.events) >= buffer.capacity:
            buffer.dropped += 1
            buffer.news = True
            return False
        buffer.events.append((event, size))
        buffer.news = True
    return True


def configure(capacity: int) -> None:
    """(Re)starts the buffer with room for ``capacity`` events: pending events are discarded and
    the drop count starts again at 0. ``0`` disables events: :func:`emit` still checks its
    arguments, then returns False without queuing or counting anything.

    The worker calls it once at start with ``--event-buffer``, before the adapter is imported;
    ``AdapterTestClient`` calls it on entering, with its ``event_buffer`` option.

    Raises:
        TypeError: ``capacity`` is not an int.
        ValueError: ``capacity`` is negative.
    """
    if not isinstance(capacity, int) or isinstance(capacity, bool):
        raise TypeError(f"event buffer capacity must be an int, got {type(capacity).__name__}")
    if capacity < 0:
        raise ValueError(f"event buffer capacity must be 0 (disabled) or more, not {capacity}")
    buffer = _buffer
    with buffer.lock:
        buffer.capacity = capacity
        buffer.events.clear()
        buffer.dropped = 0
        buffer.news = False


def capacity() -> int:
    """How many events the buffer holds (0: events are disabled)."""
    return _buffer.capacity


def dropped_total() -> int:
    """Events dropped because the buffer was full, since the last :func:`configure` (the start)."""
    return _buffer.dropped


def pending() -> int:
    """Events waiting for a reply."""
    return len(_buffer.events)


def snapshot() -> List[Event]:
    """The events waiting for a reply, oldest first, without taking them out."""
    with _buffer.lock:
        return [event for event, _ in _buffer.events]


def drain(batch: Optional["pb.TelemetryBatch"] = None, max_events: int = MAX_EVENTS_PER_BATCH) -> "pb.TelemetryBatch":
    """Takes the oldest pending events (at most ``max_events``, and at most
    :data:`MAX_BATCH_BYTES` of them, but always one when any is pending) out of the buffer into
    ``batch`` (a new ``TelemetryBatch`` when None), and sets its ``dropped_total``.

    Returns:
        the batch.
    """
    if batch is None:
        from snakepit_bridge._wire import bridge_pb2

        batch = bridge_pb2.TelemetryBatch()
    taken: List[Event] = []
    budget = MAX_BATCH_BYTES
    buffer = _buffer
    with buffer.lock:
        events = buffer.events
        while events and len(taken) < max_events and (events[0][1] <= budget or not taken):
            event, size = events.popleft()
            taken.append(event)
            budget -= size
        dropped = buffer.dropped
        buffer.news = bool(events) or dropped > 0
    for event in taken:
        batch.events.add(name=event.name, measurements=event.measurements, metadata=event.metadata,
                         unix_ns=event.unix_ns)
    batch.dropped_total = dropped
    return batch


def attach(reply: Any) -> None:
    """Server side: drains pending events into ``reply.telemetry`` (an ``ExecuteResponse``, a
    ``StreamReply`` or a ``PingResponse``). With no events and no drops the field stays unset, at
    the cost of one attribute read (no lock)."""
    if _buffer.news:
        drain(reply.telemetry)


def _check_name(name: Any) -> None:
    if not isinstance(name, str):
        raise TypeError(f"event name must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError("event name must not be empty: use a dotted name like 'cache.miss'")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"event name is {len(name)} characters, over the limit of {MAX_NAME_CHARS}: "
                         f"{name[:40]!r}...")
    if not NAME_PATTERN.fullmatch(name):
        bad = sorted({char for char in name if not NAME_PATTERN.fullmatch(char)})
        raise ValueError(f"event name {name!r} contains {', '.join(map(repr, bad))}: use only letters, digits, "
                         "'_', '.', ':' and '-'")


def _check_mapping(value: Any, what: str, limit: int) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping (a dict) or None, got {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(f"{what} has {len(value)} entries; at most {limit} are allowed: leave out some")


def _check_key(key: Any, what: str) -> int:
    """Checks a key of ``what``; returns its UTF-8 size."""
    if not isinstance(key, str):
        raise TypeError(f"{what} keys must be str, got {type(key).__name__} ({key!r})")
    if not key:
        raise ValueError(f"{what} keys must not be empty")
    if len(key) > MAX_KEY_CHARS:
        raise ValueError(f"{what} key {key[:40]!r}... is {len(key)} characters, over the limit of {MAX_KEY_CHARS}")
    return _text_bytes(key, f"{what} key")


def _check_number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"measurement {key!r} must be an int or float, got {type(value).__name__}: "
                        "convert it with float(), or put text in metadata")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"measurement {key!r} is too large for a double "
                         f"(an int of {value.bit_length()} bits)") from None
    if not math.isfinite(number):
        raise ValueError(f"measurement {key!r} must be finite, got {number}: leave it out or use metadata")
    return number


def _check_text(key: str, value: Any) -> int:
    """Checks the metadata value of ``key``; returns its UTF-8 size."""
    if not isinstance(value, str):
        raise TypeError(f"metadata {key!r} must be a str, got {type(value).__name__}: convert it with str()")
    if len(value) > MAX_METADATA_VALUE_CHARS:
        raise ValueError(f"metadata {key!r} is {len(value)} characters, over the limit of "
                         f"{MAX_METADATA_VALUE_CHARS}: shorten it")
    return _text_bytes(value, f"metadata {key!r}")


def _text_bytes(text: str, what: str) -> int:
    """The UTF-8 size of ``text``; a lone surrogate (no UTF-8 form) is a ``ValueError``."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} {text[:40]!r} is not valid Unicode text ({exc.reason} at index "
                         f"{exc.start}): it cannot be sent") from None
