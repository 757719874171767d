"""``AdapterTestClient``: call an adapter's tools in-process, through the worker's own dispatch.

No subprocess, no socket: each call is encoded to the wire form, serialized, parsed, checked
and run exactly as a worker would (argument checks, value encoding, payload limit, thread pool
or event loop), and the response comes back decoded, or as a :class:`ToolCallError`. Maps in
the arguments and results come sorted by key, as the C++ host passes them on.

:class:`HostToolServer` stands in for the C++ host's service ``Host``: Python callables served
as host tools over gRPC on a unix socket, for ``AdapterTestClient(..., host_tools=...)`` and for
worker processes started with ``--host-socket``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import queue
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Dict, List, Mapping, Optional, Set, Tuple, Type, Union

import grpc

from snakepit_bridge import arguments as _arguments
from snakepit_bridge import streaming, telemetry, tools, values
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge._wire import bridge_pb2_grpc as pb_grpc
from snakepit_bridge.adapter import BaseAdapter
from snakepit_bridge.dispatch import Dispatcher
from snakepit_bridge.errors import (
    BAD_ARGUMENTS,
    ERROR_KINDS,
    INTERNAL,
    PAYLOAD_TOO_LARGE,
    TIMEOUT,
    UNKNOWN_TOOL,
    BridgeError,
    HostToolError,
    ToolCallError,
    type_name,
)
from snakepit_bridge.host import HostClient
from snakepit_bridge.server import ENVELOPE_BYTES
from snakepit_bridge.sessions import CLOSED, DEFAULT_MAX_SESSIONS, SessionState
from snakepit_bridge.thread_check import Finding
from snakepit_bridge.thread_safe import require_thread_safe
from snakepit_bridge.tools import ToolDef, ToolSpec

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
        host_tools: fake host tools by name (plain functions), served by a
            :class:`HostToolServer` while the client is entered, as a worker started with
            ``--host-socket`` reaches the C++ host's: tools list and call them through
            ``ctx.host_tools()`` and ``ctx.call_host(...)``. The calls the host got are in
            :meth:`host_calls`. Without it, tools calling the host get ``RuntimeError``.

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
        host_tools: Optional[Mapping[str, Callable[..., Any]]] = None,
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
        self._host_server = HostToolServer(host_tools, max_message_bytes=max_message_bytes) \
            if host_tools is not None else None  # checks the host tools' signatures here
        self._host: Optional[HostClient] = None
        self._host_identity = (worker_id, max_message_bytes)
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
        if self._host_server is not None:
            self._host_server.start()
            worker_id, max_message_bytes = self._host_identity
            self._host = HostClient(self._host_server.socket_path, worker_id=worker_id,
                                    max_message_bytes=max_message_bytes)
        try:
            self._dispatcher = Dispatcher(self.adapter, **self._options, host=self._host)  # checks the tools first
            telemetry.configure(self._event_buffer)  # as a worker does before importing the adapter
            self.adapter.setup()
        except BaseException:
            if self._dispatcher is not None:
                self._dispatcher.close()
                self._dispatcher = None
            self._stop_host()
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
        try:
            self.adapter.teardown()
        finally:
            self._stop_host()

    def _stop_host(self) -> None:
        if self._host is not None:
            self._host.close()
            self._host = None
        if self._host_server is not None:
            self._host_server.stop()

    def host_calls(self) -> List["HostCall"]:
        """The calls the fake host tools got so far (``host_tools=``), in order."""
        return self._host_server.calls() if self._host_server is not None else []

    def thread_findings(self) -> List[Finding]:
        """What the thread-safety checker found so far (empty when ``thread_check="off"``)."""
        checker = self._dispatcher.checker if self._dispatcher is not None else None
        return checker.findings() if checker is not None else []

    def events(self) -> List[telemetry.Event]:
        """The telemetry events the replies carried so far, in order: ``Event(name,
        measurements, metadata, unix_ns)`` as the host receives them.

        Events travel on replies, as in a worker, and one reply carries at most
        ``telemetry.MAX_EVENTS_PER_BATCH`` events. An event emitted outside a call (in
        ``setup()``, from a thread of the adapter's) is here too, with no call after it: a worker
        delivers those on the host's next health ping, which this method stands for.
        """
        while telemetry.pending() > 0:
            self._record_events(telemetry.drain())
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
        if response.HasField("result"):
            _sort_maps(response.result)
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
    _sort_map_entries(encoded)
    return pb.ExecuteRequest(request_id=uuid.uuid4().hex, tool=tool_name, arguments=encoded, **fields)


def _sort_map_entries(mapping: pb.MapValue) -> None:
    """Sorts a map's entries by key, at every depth, in place: what the C++ host does to every
    map that crosses it (``snakepit::value::map`` is a ``std::map``; UTF-8 byte order is code
    point order), so a test sees the order a tool and its caller really see."""
    entries = sorted(mapping.entries, key=lambda entry: entry.key)
    for entry in entries:
        _sort_maps(entry.value)
    if [entry.key for entry in entries] != [entry.key for entry in mapping.entries]:
        copies = [pb.MapEntry(key=entry.key, value=entry.value) for entry in entries]
        del mapping.entries[:]
        mapping.entries.extend(copies)


def _sort_maps(value: pb.Value) -> None:
    """:func:`_sort_map_entries` for the maps inside a value."""
    kind = value.WhichOneof("kind")
    if kind == "map_value":
        _sort_map_entries(value.map_value)
    elif kind == "list_value":
        for item in value.list_value.items:
            _sort_maps(item)


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
            _sort_maps(reply.item)
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


@dataclass(frozen=True)
class HostCall:
    """One ``CallHostTool`` request a :class:`HostToolServer` got (well-formed or not).

    ``timeout_ms`` is what the worker sent: the calling tool's time left (0: no deadline).
    """

    tool: str
    arguments: Dict[str, Any]
    timeout_ms: int
    worker_id: str
    request_id: str
    session_id: str


class HostToolServer:
    """A stand-in for the C++ host's service ``Host``: serves Python functions as host tools
    over gRPC on a unix socket, for adapter tests (``AdapterTestClient(..., host_tools=...)``)
    or for a worker process started with ``--host-socket``::

        with HostToolServer({"add": lambda a, b: a + b}) as host:
            ...  # start a worker with "--host-socket", host.socket_path

    Each function's signature is its schema, as a tool's (type hints checked, ``Args:``
    descriptions, defaults); ``ListHostTools`` reports it. ``CallHostTool`` answers as the host
    does: ``unknown_tool``, ``bad_arguments`` (arguments that do not fit the signature, or a
    ``TypeError`` raised by the function), ``timeout`` (the function did not return within the
    request's ``timeout_ms``; it is left running), ``internal`` (any other exception, its
    ``str()`` as the message), or the kind and message of a :class:`HostToolError` it raises.

    Args:
        tools: the host tools by name: plain functions or bound methods (not ``async def``).
        max_message_bytes: the payload limit of results (and of gRPC, plus the envelope).
        max_workers: calls served at once.
    """

    def __init__(self, tools: Mapping[str, Callable[..., Any]], *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 max_workers: int = 16) -> None:
        self.max_message_bytes = max_message_bytes
        self._definitions: Dict[str, ToolDef] = {}
        self._functions: Dict[str, Callable[..., Any]] = {}
        for name, function in tools.items():
            self._definitions[name] = _host_tool(name, function)
            self._functions[name] = function
        self._max_workers = max_workers
        self._calls: List[HostCall] = []
        self._calls_lock = threading.Lock()
        self._directory: Optional[str] = None
        self._server: Optional[grpc.Server] = None
        self._runner: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self.socket_path = ""

    def __enter__(self) -> "HostToolServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def start(self) -> "HostToolServer":
        """Binds a fresh socket in a private temporary directory and starts serving."""
        if self._server is not None:
            raise RuntimeError("this HostToolServer is already started")
        self._directory = tempfile.mkdtemp(prefix="sp-host-", dir="/tmp" if os.path.isdir("/tmp") else None)
        self.socket_path = os.path.join(self._directory, "host.sock")
        limit = self.max_message_bytes + ENVELOPE_BYTES
        self._runner = concurrent.futures.ThreadPoolExecutor(self._max_workers, thread_name_prefix="snakepit-host-tool")
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(self._max_workers,
                                                                         thread_name_prefix="snakepit-host"),
                                   options=[("grpc.max_send_message_length", limit),
                                            ("grpc.max_receive_message_length", limit)])
        pb_grpc.add_HostServicer_to_server(_HostService(self), self._server)
        if self._server.add_insecure_port(f"unix:{self.socket_path}") == 0:
            self.stop()
            raise RuntimeError(f"gRPC could not bind unix:{self.socket_path}")
        self._server.start()
        return self

    def stop(self) -> None:
        """Stops serving (calls in flight are cancelled) and removes the socket."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(None).wait()
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.shutdown(wait=False, cancel_futures=True)
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def calls(self) -> List[HostCall]:
        """The ``CallHostTool`` requests got so far, in order."""
        with self._calls_lock:
            return list(self._calls)

    def list_tools(self) -> pb.ListHostToolsResponse:
        """The ``ListHostTools`` answer."""
        return pb.ListHostToolsResponse(tools=[tools.wire_spec(d.spec) for d in self._definitions.values()])

    def call(self, request: pb.HostToolRequest) -> pb.HostToolResponse:
        """The ``CallHostTool`` answer: runs the function within the request's ``timeout_ms``."""
        name = request.tool
        try:
            arguments = values.decode_arguments(request.arguments)
        except BridgeError as exc:
            return _host_error(exc.kind, exc.message)
        with self._calls_lock:
            self._calls.append(HostCall(name, dict(arguments), request.timeout_ms, request.worker_id,
                                        request.request_id, request.session_id))
        definition = self._definitions.get(name)
        if definition is None:
            known = ", ".join(sorted(self._definitions)) or "(none)"
            return _host_error(UNKNOWN_TOOL, f"unknown host tool '{name}'; known host tools: {known}")
        try:
            _arguments.check(definition, arguments)
        except BridgeError as exc:
            return _host_error(exc.kind, f"host tool '{name}': {exc.message}")
        runner = self._runner
        if runner is None:
            return _host_error(INTERNAL, "the host is stopping")
        future = runner.submit(self._functions[name], **arguments)
        try:
            result = future.result(request.timeout_ms / 1000.0 if request.timeout_ms > 0 else None)
        except concurrent.futures.TimeoutError:
            return _host_error(TIMEOUT, f"host tool '{name}' did not finish within timeout_ms={request.timeout_ms}")
        except HostToolError as exc:
            return _host_error(exc.kind if exc.kind in ERROR_KINDS else INTERNAL, exc.message)
        except TypeError as exc:
            return _host_error(BAD_ARGUMENTS, str(exc) or type_name(type(exc)))
        except Exception as exc:
            return _host_error(INTERNAL, str(exc) or type_name(type(exc)))
        try:
            value = values.encode(result, what=f"result of host tool '{name}'", where="result")
        except BridgeError as exc:
            return _host_error(exc.kind, exc.message)
        if value.ByteSize() > self.max_message_bytes:
            return _host_error(PAYLOAD_TOO_LARGE, f"result of host tool '{name}' is {value.ByteSize()} bytes, over "
                                                  f"the payload limit of {self.max_message_bytes} bytes")
        return pb.HostToolResponse(result=value)


class _HostService(pb_grpc.HostServicer):
    """Service ``snakepit.bridge.v1.Host`` over a :class:`HostToolServer`."""

    def __init__(self, owner: HostToolServer) -> None:
        self._owner = owner

    def ListHostTools(self, request: pb.ListHostToolsRequest,
                      context: grpc.ServicerContext) -> pb.ListHostToolsResponse:
        return self._owner.list_tools()

    def CallHostTool(self, request: pb.HostToolRequest, context: grpc.ServicerContext) -> pb.HostToolResponse:
        return self._owner.call(request)


def _host_tool(name: str, function: Callable[..., Any]) -> ToolDef:
    """A fake host tool's definition, from the function's signature as a tool's.

    Raises:
        TypeError: not a plain function, an ``async def`` one, or a signature with no wire form.
    """
    if not callable(function):
        raise TypeError(f"host tool '{name}' is {type(function).__name__}, not a function")
    definition = tools.build(name, staticmethod(function), tools.ToolOptions(name=name), "host_tools")
    if definition.is_async or definition.streaming:
        raise TypeError(f"host tool '{name}': host tools are called synchronously; use a plain function, "
                        "not async def or a generator")
    if definition.context_parameter is not None:
        raise TypeError(f"host tool '{name}': host tools take no CallContext")
    return definition


def _host_error(kind: str, message: str) -> pb.HostToolResponse:
    return pb.HostToolResponse(error=pb.Error(kind=pb.ErrorKind.Value(kind.upper()), message=message))
