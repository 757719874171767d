"""``AdapterTestClient``: call an adapter's tools in-process, through the worker's own dispatch.

No subprocess, no socket: each call is encoded to the wire form, serialized, parsed, checked
and run exactly as a worker would (argument checks, value encoding, payload limit, thread pool
or event loop), and the response comes back decoded, or as a :class:`ToolCallError`.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any, List, Mapping, Optional, Type, Union

from snakepit_bridge import telemetry, values
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.adapter import BaseAdapter
from snakepit_bridge.dispatch import Dispatcher
from snakepit_bridge.errors import BridgeError, ToolCallError
from snakepit_bridge.thread_check import Finding
from snakepit_bridge.thread_safe import require_thread_safe
from snakepit_bridge.tools import ToolSpec

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class AdapterTestClient:
    """Drives one adapter instance the way a worker process does, for unit tests.

    Use it as a context manager: ``setup()`` runs on enter, ``teardown()`` on exit::

        with AdapterTestClient(MyAdapter) as client:
            assert client.call("add", a=1, b=2) == 3

    Args:
        adapter: an adapter class (instantiated with no arguments) or an instance.
        max_message_bytes: the payload limit, as ``--max-message-bytes`` gives a worker.
        concurrency: size of the thread pool for sync tools, as ``--concurrency``.
        worker_id: what tools see as ``CallContext.worker_id``.
        profile: ``"process"`` or ``"thread"``, as ``--profile``: ``"thread"`` refuses an adapter
            that is not a ``ThreadSafeAdapter`` with ``ThreadSafetyError``, as a worker would.
        thread_check: ``"off"``, ``"warn"`` or ``"strict"``, as ``--thread-check``; the findings
            are in :meth:`thread_findings`.
        event_buffer: the telemetry event buffer's capacity, as ``--event-buffer`` (0 disables
            events). The buffer is the process's own: entering the client empties it and sets
            its capacity. The events the replies carried are in :meth:`events`.
    """

    def __init__(
        self,
        adapter: Union[Type[BaseAdapter], BaseAdapter],
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        concurrency: int = 1,
        worker_id: str = "test",
        profile: str = "process",
        thread_check: str = "off",
        event_buffer: int = telemetry.DEFAULT_EVENT_BUFFER,
    ) -> None:
        if profile not in ("process", "thread"):
            raise ValueError(f"profile must be 'process' or 'thread', not {profile!r}")
        cls = adapter if isinstance(adapter, type) else type(adapter)
        if profile == "thread":
            require_thread_safe(cls, f"{cls.__module__}.{cls.__qualname__}", concurrency)
        instance = adapter() if isinstance(adapter, type) else adapter
        if not isinstance(instance, BaseAdapter):
            raise TypeError(f"{type(instance).__name__} is not a BaseAdapter")
        self.adapter = instance
        self._options = dict(concurrency=concurrency, max_payload_bytes=max_message_bytes, worker_id=worker_id,
                             thread_check=thread_check)
        self._event_buffer = event_buffer
        self._events: List[telemetry.Event] = []
        self._events_dropped = 0
        self._dispatcher: Optional[Dispatcher] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self.last_wall_ns = 0  # wall time of the last call's tool, as the worker reports it
        self.last_cpu_ns = 0  # CPU time of the last call's tool

    def __enter__(self) -> "AdapterTestClient":
        self._dispatcher = Dispatcher(self.adapter, **self._options)  # checks the tools first
        telemetry.configure(self._event_buffer)  # as a worker does before importing the adapter
        try:
            self.adapter.setup()
        except BaseException:
            self._dispatcher.close()
            self._dispatcher = None
            raise
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="snakepit-test-loop", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        assert self._loop is not None and self._thread is not None and self._dispatcher is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._dispatcher.close()
        self.adapter.teardown()

    def thread_findings(self) -> List[Finding]:
        """What the thread-safety checker found so far (empty when ``thread_check="off"``)."""
        checker = self._dispatcher.checker if self._dispatcher is not None else None
        return checker.findings() if checker is not None else []

    def events(self) -> List[telemetry.Event]:
        """The telemetry events the replies carried so far, in order: ``Event(name,
        measurements, metadata, unix_ns)`` as the host receives them.

        Events travel on replies, as in a worker: an event emitted outside a call (in
        ``setup()``, from a thread of the adapter's) shows up after the next call, and one reply
        carries at most ``telemetry.MAX_EVENTS_PER_BATCH`` events.
        """
        return list(self._events)

    def events_dropped(self) -> int:
        """Events dropped because the buffer was full, as the last reply reported it."""
        return self._events_dropped

    def tools(self) -> List[ToolSpec]:
        """The adapter's tool specs, sorted by name (as ``ListTools`` reports them)."""
        return self.adapter.describe()

    def call(self, tool_name: str, /, **arguments: Any) -> Any:
        """Calls a tool with keyword arguments; returns the decoded result.

        Raises:
            ToolCallError: the call failed (kind, message, python_type, traceback as a worker
                would send them).
        """
        return self.call_with(tool_name, arguments)

    def call_with(
        self,
        tool_name: str,
        arguments: Mapping[str, Any],
        *,
        timeout_ms: int = 0,
        session_id: str = "",
        correlation_id: str = "",
        metadata: Optional[Mapping[str, str]] = None,
    ) -> Any:
        """Like :meth:`call`, with the arguments as a mapping and the call's context fields."""
        if self._dispatcher is None or self._loop is None:
            raise RuntimeError("use AdapterTestClient as a context manager: `with AdapterTestClient(...) as client:`")
        try:
            encoded = values.encode_map(arguments, what=f"arguments of tool '{tool_name}'")
        except BridgeError as exc:
            raise ToolCallError(exc.kind, exc.message) from None
        request = pb.ExecuteRequest(
            request_id=uuid.uuid4().hex,
            tool=tool_name,
            arguments=encoded,
            timeout_ms=timeout_ms,
            correlation_id=correlation_id,
            session_id=session_id,
            metadata=dict(metadata or {}),
        )
        request = pb.ExecuteRequest.FromString(request.SerializeToString())  # exactly what a worker parses
        future = asyncio.run_coroutine_threadsafe(self._dispatcher.execute(request), self._loop)
        response = pb.ExecuteResponse.FromString(future.result().SerializeToString())
        self.last_wall_ns = response.wall_ns
        self.last_cpu_ns = response.cpu_ns
        if response.HasField("telemetry"):
            batch = response.telemetry
            self._events.extend(telemetry.Event(event.name, dict(event.measurements), dict(event.metadata),
                                                event.unix_ns) for event in batch.events)
            self._events_dropped = batch.dropped_total
        if response.WhichOneof("outcome") == "error":
            error = response.error
            raise ToolCallError(
                pb.ErrorKind.Name(error.kind).lower(), error.message, error.python_type, error.traceback
            )
        return values.decode(response.result, where="result")
