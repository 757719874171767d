"""``AdapterTestClient``: call an adapter's tools in-process, through the worker's own dispatch.

No subprocess, no socket: each call is encoded to the wire form, serialized, parsed, checked
and run exactly as a worker would (argument checks, value encoding, payload limit, thread pool
or event loop), and the response comes back decoded, or as a :class:`ToolCallError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import uuid
from typing import Any, AsyncIterator, List, Mapping, Optional, Set, Tuple, Type, Union

from snakepit_bridge import streaming, telemetry, values
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.adapter import BaseAdapter
from snakepit_bridge.dispatch import Dispatcher
from snakepit_bridge.errors import BridgeError, ToolCallError
from snakepit_bridge.sessions import CLOSED, DEFAULT_MAX_SESSIONS, SessionState
from snakepit_bridge.thread_check import Finding
from snakepit_bridge.thread_safe import require_thread_safe
from snakepit_bridge.tools import ToolSpec

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

#: How long leaving the client waits for streams' generators still being closed.
STREAM_CLOSE_WAIT_S = 10.0


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
        max_sessions: session states kept at most, as ``--max-sessions``.

    Sessions work as in a worker: calls made with ``call_with(..., session_id=...)`` share the
    session's ``ctx.session``; :meth:`close_session` is the host's ``CloseSession``, and leaving
    the ``with`` block calls ``on_session_closed(..., "stopping", ...)`` for the sessions left,
    before ``teardown()``.
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
        max_sessions: int = DEFAULT_MAX_SESSIONS,
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
                             thread_check=thread_check, max_sessions=max_sessions)
        self._event_buffer = event_buffer
        self._events: List[telemetry.Event] = []
        self._events_dropped = 0
        self._streams: Set["TestStream"] = set()  # streams not finished yet: cancelled on exit
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
        for stream in list(self._streams):
            stream.cancel()
        # Generators still being closed (a sync step that outlived its stream) finish first.
        asyncio.run_coroutine_threadsafe(self._dispatcher.wait_idle(STREAM_CLOSE_WAIT_S), self._loop).result()
        asyncio.run_coroutine_threadsafe(self._dispatcher.sessions.close_all(), self._loop).result()
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
        session_moved: bool = False,
    ) -> Any:
        """Like :meth:`call`, with the arguments as a mapping and the call's context fields
        (``session_moved``: as the host flags the first call of a session on a worker that has
        not served it before)."""
        dispatcher, loop = self._entered()
        request = _request(tool_name, arguments, timeout_ms=timeout_ms, correlation_id=correlation_id,
                           session_id=session_id, metadata=dict(metadata or {}), session_moved=session_moved)
        request = pb.ExecuteRequest.FromString(request.SerializeToString())  # exactly what a worker parses
        future = asyncio.run_coroutine_threadsafe(dispatcher.execute(request), loop)
        response = pb.ExecuteResponse.FromString(future.result().SerializeToString())
        self.last_wall_ns = response.wall_ns
        self.last_cpu_ns = response.cpu_ns
        if response.HasField("telemetry"):
            self._record_events(response.telemetry)
        if response.WhichOneof("outcome") == "error":
            raise _tool_call_error(response.error)
        return values.decode(response.result, where="result")

    def stream(self, tool_name: str, /, *, credit: int = 1, **arguments: Any) -> "TestStream":
        """Calls a tool through ``ExecuteStream``, as a worker serves it; returns a
        :class:`TestStream`, an iterator of the decoded items::

            assert list(client.stream("count", n=3)) == [0, 1, 2]

        ``credit`` is the initial credit (``stream_credit``); by default each item taken from
        the iterator grants one more, so the generator runs at most ``credit`` items ahead of
        the consumer. The error of a failed stream is raised as :class:`ToolCallError` after
        its items, like a unary call's.
        """
        return self.stream_with(tool_name, arguments, credit=credit)

    def stream_with(
        self,
        tool_name: str,
        arguments: Mapping[str, Any],
        *,
        credit: int = 1,
        auto_credit: bool = True,
        timeout_ms: int = 0,
        session_id: str = "",
        correlation_id: str = "",
        metadata: Optional[Mapping[str, str]] = None,
        session_moved: bool = False,
    ) -> "TestStream":
        """Like :meth:`stream`, with the arguments as a mapping and the call's context fields.
        With ``auto_credit=False`` no credit is granted past ``credit`` until
        :meth:`TestStream.grant` is called."""
        dispatcher, loop = self._entered()
        request = _request(tool_name, arguments, timeout_ms=timeout_ms, correlation_id=correlation_id,
                           session_id=session_id, metadata=dict(metadata or {}), session_moved=session_moved,
                           stream_credit=credit)
        stream = TestStream(self, dispatcher, loop, request, auto_credit)
        self._streams.add(stream)
        return stream

    def _record_events(self, batch: pb.TelemetryBatch) -> None:
        """Keeps the telemetry events a reply carried, for :meth:`events`."""
        self._events.extend(telemetry.Event(event.name, dict(event.measurements), dict(event.metadata),
                                            event.unix_ns) for event in batch.events)
        self._events_dropped = batch.dropped_total

    def session(self, session_id: str, *, metadata: Optional[Mapping[str, str]] = None) -> "TestSession":
        """Calls within one session: ``client.session("s1").call("put", key="k", value=1)``."""
        return TestSession(self, session_id, dict(metadata or {}))

    def close_session(self, session_id: str, reason: str = CLOSED) -> bool:
        """What the host's ``CloseSession`` does: the session's state is dropped and the
        adapter's ``on_session_closed(session_id, reason, state)`` runs (after the session's
        calls in flight). Returns whether there was state for the session (``known``)."""
        dispatcher, loop = self._entered()
        return asyncio.run_coroutine_threadsafe(dispatcher.close_session(session_id, reason), loop).result()

    def session_state(self, session_id: str) -> Optional[SessionState]:
        """The state held for a session (what its tools see as ``ctx.session``), or None."""
        return self._entered()[0].sessions.store.get(session_id)

    def session_ids(self) -> List[str]:
        """The sessions state is held for, least recently used first."""
        return self._entered()[0].sessions.store.ids()

    def _entered(self) -> Tuple[Dispatcher, asyncio.AbstractEventLoop]:
        if self._dispatcher is None or self._loop is None:
            raise RuntimeError("use AdapterTestClient as a context manager: `with AdapterTestClient(...) as client:`")
        return self._dispatcher, self._loop


class TestSession:
    """The calls of one session through an :class:`AdapterTestClient` (from
    :meth:`AdapterTestClient.session`): each carries the session id and the metadata given."""

    __test__ = False  # not a pytest test class

    def __init__(self, client: AdapterTestClient, session_id: str, metadata: Mapping[str, str]) -> None:
        if not session_id:
            raise ValueError("session_id must not be empty")
        self.client = client
        self.id = session_id
        self.metadata = dict(metadata)

    def call(self, tool_name: str, /, **arguments: Any) -> Any:
        """:meth:`AdapterTestClient.call` within this session."""
        return self.client.call_with(tool_name, arguments, session_id=self.id, metadata=self.metadata)

    @property
    def state(self) -> Optional[SessionState]:
        """What the session's tools see as ``ctx.session``; None before its first call or after
        it was closed."""
        return self.client.session_state(self.id)

    def close(self, reason: str = CLOSED) -> bool:
        """:meth:`AdapterTestClient.close_session` of this session."""
        return self.client.close_session(self.id, reason)


def _request(tool_name: str, arguments: Mapping[str, Any], **fields: Any) -> pb.ExecuteRequest:
    """The ``ExecuteRequest`` of a call, with a fresh request id.

    Raises:
        ToolCallError: the arguments cannot be encoded.
    """
    try:
        encoded = values.encode_map(arguments, what=f"arguments of tool '{tool_name}'")
    except BridgeError as exc:
        raise ToolCallError(exc.kind, exc.message) from None
    return pb.ExecuteRequest(request_id=uuid.uuid4().hex, tool=tool_name, arguments=encoded, **fields)


def _tool_call_error(error: pb.Error) -> ToolCallError:
    """A wire ``Error`` as the caller sees it."""
    return ToolCallError(pb.ErrorKind.Name(error.kind).lower(), error.message, error.python_type, error.traceback)


class TestStream:
    """One streaming call through an :class:`AdapterTestClient` (from
    :meth:`AdapterTestClient.stream`): iterate it for the decoded items.

    After the last item, iteration raises :class:`ToolCallError` when the stream ended with an
    error, else stops; :attr:`ended` is then true and :attr:`items_sent`, :attr:`wall_ns` and
    :attr:`cpu_ns` hold the worker's ``end`` figures. :meth:`cancel` (or leaving a ``with``
    block early) cancels it as the host would: the tool's generator is closed.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, client: AdapterTestClient, dispatcher: Dispatcher, loop: asyncio.AbstractEventLoop,
                 request: pb.ExecuteRequest, auto_credit: bool) -> None:
        self._client = client
        self._loop = loop
        self._auto_credit = auto_credit
        self._requests: "asyncio.Queue[Optional[pb.StreamRequest]]" = asyncio.Queue()
        self._replies: "queue.Queue[Optional[pb.StreamReply]]" = queue.Queue()
        self._done = False
        self.ended = False  # the worker sent `end`
        self.cancelled = False
        self.items_sent = 0
        self.wall_ns = 0
        self.cpu_ns = 0
        start = pb.StreamRequest(start=request)
        self._closed = asyncio.run_coroutine_threadsafe(self._serve(dispatcher, start), loop)

    def __iter__(self) -> "TestStream":
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        reply = self._replies.get()
        if reply is None:  # cancelled: the worker sent no last message
            self._finish()
            raise StopIteration
        if reply.HasField("telemetry"):
            self._client._record_events(reply.telemetry)
        kind = reply.WhichOneof("kind")
        if kind == "item":
            if self._auto_credit:
                self.grant(1)
            return values.decode(reply.item, where="item")
        self._finish()
        if kind == "end":
            self.ended = True
            self.items_sent, self.wall_ns, self.cpu_ns = reply.end.items, reply.end.wall_ns, reply.end.cpu_ns
            raise StopIteration
        raise _tool_call_error(reply.error)

    def __enter__(self) -> "TestStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if not self._done:
            self.cancel()

    def grant(self, credit: int) -> None:
        """Sends a ``credit`` message: the worker may send ``credit`` more items."""
        self._send(pb.StreamRequest(credit=credit))

    def cancel(self) -> None:
        """Sends ``cancel`` and waits until the tool's generator is closed (its ``finally:``
        blocks have run); the items not taken yet are dropped."""
        if self._done:
            return
        self.cancelled = True
        self._send(pb.StreamRequest(cancel=True))
        self._closed.result()
        self._finish()

    def _send(self, message: pb.StreamRequest) -> None:
        message = pb.StreamRequest.FromString(message.SerializeToString())  # exactly what a worker parses
        self._loop.call_soon_threadsafe(self._requests.put_nowait, message)

    def _finish(self) -> None:
        self._done = True
        self._loop.call_soon_threadsafe(self._requests.put_nowait, None)  # the caller's side closes
        self._client._streams.discard(self)

    async def _serve(self, dispatcher: Dispatcher, start: pb.StreamRequest) -> None:
        async def requests() -> AsyncIterator[pb.StreamRequest]:
            yield pb.StreamRequest.FromString(start.SerializeToString())
            while True:
                message = await self._requests.get()
                if message is None:
                    return
                yield message

        closed: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
        try:
            async with contextlib.aclosing(streaming.serve(dispatcher, requests(), closed=closed)) as replies:
                async for reply in replies:
                    self._replies.put(pb.StreamReply.FromString(reply.SerializeToString()))
        finally:
            self._replies.put(None)
        await closed  # the generator is closed and the slot given back
