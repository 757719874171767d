"""A client of a running tree's Gateway (``messages/gateway.proto``): call its pools from scripts,
services and tests, synchronously (:class:`Client`) or with asyncio (:class:`AsyncClient`).

::

    from snakepit_bridge.client import Client, GatewayError

    with Client("unix:/tmp/snakepit-AbC123/gateway.sock") as client:
        client.call("showcase", "add", a=2, b=40)                # 42
        for item in client.stream("showcase", "count", n=3):     # 0, 1, 2
            ...

Values travel as the worker's own (``snakepit_bridge.values``): ``None``, bool, int, float,
str, bytes, lists, str-keyed dicts, numpy arrays (which come back as read-only numpy arrays, or
as memoryviews without numpy). Everything is inline: a gateway client never uses shared memory.

Every failure is a :class:`GatewayError` with a ``kind``: the snakepit error name the gateway
sent (``"unknown_tool"``, ``"python_exception"``, ``"timeout"``, ...), or, when the gateway
itself refused or failed the RPC, one derived from the gRPC status (``"unauthenticated"``,
``"limit"``, ``"unavailable"``, ``"timeout"``, ``"transport"``). See ``docs/python-client.md``.

Only the standard library, grpc and protobuf are imported (numpy on the first array decoded).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import (Any, AsyncIterator, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import grpc
import grpc.aio

from snakepit_bridge import values
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge._wire import gateway_pb2 as gw
from snakepit_bridge._wire import gateway_pb2_grpc as gw_grpc
from snakepit_bridge.errors import BridgeError

__all__ = ["Client", "AsyncClient", "GatewayError", "StreamSummary", "CallStream", "AsyncCallStream",
           "connect", "connect_async", "ADDRESS_ENV", "DEFAULT_MAX_MESSAGE_BYTES"]

#: The environment variable :func:`connect` reads the address from.
ADDRESS_ENV = "SNAKEPIT_GATEWAY"

#: The largest message either way, by default (the gateway's own default, ``max_message_bytes``).
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

#: GatewayError kinds for failures of the RPC itself (not sent by the gateway as a ``Failure``).
UNAUTHENTICATED = "unauthenticated"
LIMIT = "limit"
UNAVAILABLE = "unavailable"
TIMEOUT = "timeout"
TRANSPORT = "transport"

_STATUS_KINDS = {
    grpc.StatusCode.UNAUTHENTICATED: UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: LIMIT,
    grpc.StatusCode.UNAVAILABLE: UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: TIMEOUT,
}


class GatewayError(Exception):
    """A failed call through the gateway.

    Attributes:
        kind: what failed. Sent by the gateway: a snakepit error name such as
            ``"unknown_tool"``, ``"bad_arguments"``, ``"python_exception"``, ``"timeout"``,
            ``"pool_saturated"``, ``"payload_too_large"``, ``"encode_failed"``. Found by the
            client: ``"encode_failed"`` (an argument has no wire form) or ``"bad_arguments"``
            (a reply that cannot be decoded). From the gRPC status of a refused or failed RPC:
            ``"unauthenticated"``, ``"limit"`` (RESOURCE_EXHAUSTED: a gateway limit, named in
            the message), ``"unavailable"`` (no server there, or the tree is stopping),
            ``"timeout"`` (DEADLINE_EXCEEDED), else ``"transport"``.
        message: what happened (for a gRPC status: its details).
        python_type: the exception's type for ``"python_exception"`` (``"ValueError"``,
            ``"mypkg.Oops"``); empty otherwise.
        traceback: the formatted Python traceback, when there is one; empty otherwise.
        code: the ``grpc.StatusCode`` when the RPC itself failed; None when the gateway
            answered with a failure (or the client found it).

    ``str(exc)`` is ``"[kind] message"``.
    """

    def __init__(self, kind: str, message: str, python_type: str = "", traceback: str = "", *,
                 code: Optional[grpc.StatusCode] = None) -> None:
        super().__init__(f"[{kind}] {message}")
        self.kind = kind
        self.message = message
        self.python_type = python_type
        self.traceback = traceback
        self.code = code

    def __repr__(self) -> str:
        return f"GatewayError({self.kind!r}, {self.message!r})"

    def __reduce__(self) -> Any:  # pickles with its fields (e.g. map outcomes across processes)
        return (_gateway_error, (self.kind, self.message, self.python_type, self.traceback,
                                 self.code.name if self.code is not None else None))


def _gateway_error(kind: str, message: str, python_type: str, traceback: str, code: Optional[str]) -> GatewayError:
    return GatewayError(kind, message, python_type, traceback,
                        code=grpc.StatusCode[code] if code is not None else None)


@dataclass(frozen=True)
class StreamSummary:
    """The ``end`` message of a stream: how many items the tool produced, its Python wall time
    and the worker that ran it."""

    items: int
    python_wall_ns: int
    worker_id: str


# --- what both clients share: addresses, channels, requests and replies ---------------------

def _address_from_env(address: Optional[str]) -> str:
    if address is None:
        address = os.environ.get(ADDRESS_ENV, "")
        if not address:
            raise ValueError(f"no gateway address: pass one (\"unix:/path/to/gateway.sock\" or \"host:port\") "
                             f"or set {ADDRESS_ENV} (`snakepit run --print-address FILE` prints it)")
    return address


def _read_token(token: Optional[str], token_file: Optional[str]) -> Optional[str]:
    if token is not None and token_file is not None:
        raise ValueError("pass token or token_file, not both")
    if token_file is not None:
        with open(token_file, encoding="utf-8") as handle:
            token = handle.read().strip()
        if not token:
            raise ValueError(f"token file {token_file!r} is empty")
    if token is not None and (not token or any(ch in token for ch in "\r\n\0")):
        raise ValueError("a token must be non-empty, on one line")
    return token


class _Connection:
    """What a client is configured with: the address, how to reach it, who we are, and the
    default deadline. Builds the channel arguments for grpc and grpc.aio alike."""

    def __init__(self, address: str, token: Optional[str], token_file: Optional[str],
                 root_certificates: Optional[bytes], private_key: Optional[bytes],
                 certificate_chain: Optional[bytes], timeout: Optional[float], max_message_bytes: int,
                 options: Sequence[Tuple[str, Any]]) -> None:
        if not isinstance(address, str) or not address or address in ("unix:", "unix://"):
            raise ValueError(f"bad gateway address {address!r}: expected \"unix:/path/to/gateway.sock\" "
                             "or \"host:port\"")
        if (private_key is None) != (certificate_chain is None):
            raise ValueError("a client certificate needs both private_key and certificate_chain")
        if max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be positive")
        self.address = address
        token = _read_token(token, token_file)
        self.metadata: Tuple[Tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout
        self.credentials: Optional[grpc.ChannelCredentials] = None
        if root_certificates is not None or private_key is not None:
            self.credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates,
                                                            private_key=private_key,
                                                            certificate_chain=certificate_chain)
        self.options: List[Tuple[str, Any]] = [("grpc.max_send_message_length", max_message_bytes),
                                               ("grpc.max_receive_message_length", max_message_bytes),
                                               *options]

    def deadline(self, timeout: Optional[float]) -> Optional[float]:
        return self.timeout if timeout is None else timeout


def _status_error(exc: grpc.RpcError) -> GatewayError:
    """The GatewayError for an RPC that ended with a non-OK gRPC status."""
    code_of = getattr(exc, "code", None)
    details_of = getattr(exc, "details", None)
    code = code_of() if callable(code_of) else None
    details = (details_of() if callable(details_of) else None) or ""
    if not details:
        details = f"gRPC status {code.name}" if code is not None else str(exc)
    return GatewayError(_STATUS_KINDS.get(code, TRANSPORT), details, code=code)


def _failure_error(failure: gw.Failure) -> GatewayError:
    return GatewayError(failure.kind or "internal", failure.message, failure.python_type, failure.traceback)


def _encode_arguments(arguments: Mapping[str, Any], what: str = "arguments") -> pb.MapValue:
    if not isinstance(arguments, Mapping):
        raise TypeError(f"{what} must be a mapping of argument names to values, not {type(arguments).__name__}")
    for name in arguments:
        if not isinstance(name, str):
            raise TypeError(f"{what}: argument names must be str, not {type(name).__name__}")
    try:
        return values.encode_map(arguments, what=what, where=what)
    except BridgeError as exc:
        raise GatewayError(exc.kind, exc.message) from None


def _decode(value: pb.Value, where: str) -> Any:
    try:
        return values.decode(value, where=where, take=False)
    except BridgeError as exc:
        raise GatewayError(exc.kind, exc.message) from None


def _call_request(pool: str, tool: str, arguments: Mapping[str, Any], session: Optional[str],
                  correlation_id: str, metadata: Optional[Mapping[str, str]], window: int = 0) -> gw.CallRequest:
    if window < 0:
        raise ValueError("window must be at least 0")
    return gw.CallRequest(pool=pool, tool=tool, arguments=_encode_arguments(arguments),
                          session_id=session or "", correlation_id=correlation_id,
                          metadata=dict(metadata or {}), stream_window=window)


def _call_result(reply: gw.CallReply) -> Any:
    outcome = reply.WhichOneof("outcome")
    if outcome == "failure":
        raise _failure_error(reply.failure)
    if outcome == "result":
        return _decode(reply.result, "result")
    return None  # neither set: None, as a Value with no kind decodes


def _map_request(pool: str, tool: str, items: Iterable[Mapping[str, Any]], chunk: int,
                 correlation_id: str) -> gw.MapRequest:
    if chunk < 0:
        raise ValueError("chunk must be at least 0")
    request = gw.MapRequest(pool=pool, tool=tool, chunk=chunk, correlation_id=correlation_id)
    for index, item in enumerate(items):
        request.items.append(_encode_arguments(item, what=f"items[{index}]"))
    return request


def _map_outcomes(request: gw.MapRequest, reply: gw.MapReply) -> List[Any]:
    if len(reply.items) != len(request.items):
        raise GatewayError(TRANSPORT, f"the gateway answered {len(reply.items)} outcomes for "
                                      f"{len(request.items)} argument sets")
    outcomes: List[Any] = []
    for index, item in enumerate(reply.items):
        if item.WhichOneof("outcome") == "failure":
            outcomes.append(_failure_error(item.failure))
        elif item.WhichOneof("outcome") == "result":
            try:
                outcomes.append(_decode(item.result, f"items[{index}]"))
            except GatewayError as exc:
                outcomes.append(exc)
        else:
            outcomes.append(None)
    return outcomes


def _stream_message(reply: gw.StreamReply) -> Tuple[bool, Any]:
    """(True, item) for an item; (False, StreamSummary) for the end; raises for a failure."""
    kind = reply.WhichOneof("kind")
    if kind == "item":
        return True, _decode(reply.item, "item")
    if kind == "end":
        end = reply.end
        return False, StreamSummary(items=end.items, python_wall_ns=end.python_wall_ns, worker_id=end.worker_id)
    if kind == "failure":
        raise _failure_error(reply.failure)
    raise GatewayError(TRANSPORT, "the gateway sent an empty stream message")


_STREAM_CUT = "the stream ended without an end message"


def _session_request(pool: str, session_id: str) -> gw.SessionRequest:
    return gw.SessionRequest(pool=pool, session_id=session_id)


def _opened(reply: gw.SessionReply) -> str:
    if reply.HasField("failure"):
        raise _failure_error(reply.failure)
    return reply.session_id


def _closed(reply: gw.SessionReply) -> bool:
    if reply.HasField("failure"):
        raise _failure_error(reply.failure)
    return reply.closed


def _tool_dict(spec: pb.ToolSpec) -> Dict[str, Any]:
    parameters = []
    for parameter in spec.parameters:
        entry: Dict[str, Any] = {"name": parameter.name, "type": parameter.type, "required": parameter.required,
                                 "description": parameter.description}
        if parameter.HasField("default_value"):
            entry["default"] = _decode(parameter.default_value, f"{spec.name}.{parameter.name}")
        parameters.append(entry)
    return {"name": spec.name, "description": spec.description, "parameters": parameters,
            "returns": spec.returns, "streaming": spec.streaming, "idempotent": spec.idempotent}


def _pools(reply: gw.ListPoolsReply) -> List[Dict[str, Any]]:
    return [{"name": info.name, "state": info.state, "size": info.size, "ready": info.ready, "busy": info.busy,
             "queued": info.queued, "profile": info.profile, "adapter": info.adapter,
             "tools": [_tool_dict(spec) for spec in info.tools]}
            for info in reply.pools]


def _status(reply: gw.StatusReply) -> Dict[str, Any]:
    if reply.HasField("failure"):
        raise _failure_error(reply.failure)
    try:
        return json.loads(reply.json)
    except ValueError as exc:
        raise GatewayError(TRANSPORT, f"the gateway's status is not valid JSON: {exc}") from None


# --- the synchronous client -------------------------------------------------------------------

class _StreamState:
    """What :class:`CallStream` and :class:`AsyncCallStream` share: the RPC, whether it is
    over, its summary, and how one reply of the gateway reads."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._done = False
        #: The stream's end (items, Python wall time, worker), once it ended normally.
        self.summary: Optional[StreamSummary] = None

    def _take(self, reply: gw.StreamReply) -> Tuple[bool, Any]:
        """``(True, item)`` for an item; ``(False, None)`` for the end (:attr:`summary` set).
        A failure raises :class:`GatewayError`. After the end or a failure the gateway closes
        the RPC itself."""
        try:
            is_item, content = _stream_message(reply)
        except GatewayError:
            self._done = True
            raise
        if is_item:
            return True, content
        self.summary = content
        self._done = True
        return False, None

    def _cut(self, error: GatewayError) -> GatewayError:
        """The RPC ended without the stream's end: ``error`` says how."""
        self._done = True
        return error

    def cancel(self) -> None:
        """Cancels the RPC if it is still open (the gateway closes the generator)."""
        if not self._done:
            self._done = True
            self._call.cancel()


class CallStream(_StreamState, Iterator[Any]):
    """The items of one :meth:`Client.stream` call, as they come.

    Iterating yields each decoded item; a failure of the tool (or of the RPC) raises
    :class:`GatewayError`; the end of the stream ends iteration and sets :attr:`summary`.
    Stopping early (``break`` out of a ``for`` over it, :meth:`close`, leaving a ``with`` block,
    or dropping the last reference) cancels the RPC, and the gateway closes the generator in
    Python (its ``finally:`` blocks run).
    """

    def __iter__(self) -> "CallStream":
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        try:
            reply = next(self._call)
        except StopIteration:
            raise self._cut(GatewayError(TRANSPORT, _STREAM_CUT)) from None
        except grpc.RpcError as exc:
            raise self._cut(_status_error(exc)) from None
        is_item, item = self._take(reply)
        if is_item:
            return item
        raise StopIteration

    def close(self) -> None:
        """Cancels the RPC if it is still open (the gateway closes the generator)."""
        self.cancel()

    def __enter__(self) -> "CallStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class Client:
    """A synchronous client of a tree's Gateway. Thread-safe: one client (one channel, one
    connection) serves any number of threads.

    Args:
        address: ``"unix:/path/to/gateway.sock"`` or ``"host:port"`` (as ``snakepit run`` logs
            it: ``gateway listening on <address>``).
        token: the gateway's token (``[gateway] token``), sent as ``authorization: Bearer ...``.
        token_file: a file holding the token instead (surrounding whitespace is ignored).
        root_certificates: PEM certificates that sign the gateway's certificate: connects with
            TLS. Without it (and without a client certificate) the channel is plaintext.
        private_key, certificate_chain: PEM key and certificate of this client, for a gateway
            that asks for client certificates (``tls_client_ca``); TLS.
        timeout: the default deadline of each call, in seconds (None: none). It becomes the
            request's deadline in the pool; a call can pass its own.
        max_message_bytes: the largest message either way (default 64 MiB, as the gateway).
        options: more gRPC channel options, e.g. ``[("grpc.ssl_target_name_override", "tree")]``.

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, address: str, *, token: Optional[str] = None, token_file: Optional[str] = None,
                 root_certificates: Optional[bytes] = None, private_key: Optional[bytes] = None,
                 certificate_chain: Optional[bytes] = None, timeout: Optional[float] = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 options: Sequence[Tuple[str, Any]] = ()) -> None:
        self._conn = _Connection(address, token, token_file, root_certificates, private_key, certificate_chain,
                                 timeout, max_message_bytes, options)
        if self._conn.credentials is not None:
            self._channel = grpc.secure_channel(address, self._conn.credentials, options=self._conn.options)
        else:
            self._channel = grpc.insecure_channel(address, options=self._conn.options)
        self._stub = gw_grpc.GatewayStub(self._channel)

    @property
    def address(self) -> str:
        return self._conn.address

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._conn.address!r})"

    def _unary(self, method: Any, request: Any, timeout: Optional[float]) -> Any:
        try:
            return method(request, timeout=self._conn.deadline(timeout), metadata=self._conn.metadata)
        except grpc.RpcError as exc:
            raise _status_error(exc) from None

    def call(self, pool: str, tool: str, /, *, session: Optional[str] = None, timeout: Optional[float] = None,
             correlation_id: str = "", metadata: Optional[Mapping[str, str]] = None, **arguments: Any) -> Any:
        """Calls ``tool`` of ``pool`` with keyword ``arguments`` and returns its decoded result.

        Arguments named ``session``, ``timeout``, ``correlation_id`` or ``metadata``: use
        :meth:`call_with`.

        Args:
            session: a session id (:meth:`open_session`): the call runs in that session.
            timeout: this call's deadline in seconds (default: the client's).
            correlation_id: carried into the tree's logs and telemetry.
            metadata: string pairs the tool sees as ``ctx.metadata``.

        Raises:
            GatewayError: the call failed (``kind`` says how).
        """
        return self.call_with(pool, tool, arguments, session=session, timeout=timeout,
                              correlation_id=correlation_id, metadata=metadata)

    def call_with(self, pool: str, tool: str, arguments: Mapping[str, Any], *, session: Optional[str] = None,
                  timeout: Optional[float] = None, correlation_id: str = "",
                  metadata: Optional[Mapping[str, str]] = None) -> Any:
        """:meth:`call` with the arguments as a mapping (any names)."""
        request = _call_request(pool, tool, arguments, session, correlation_id, metadata)
        return _call_result(self._unary(self._stub.Call, request, timeout))

    def map(self, pool: str, tool: str, items: Iterable[Mapping[str, Any]], *, chunk: int = 0,
            timeout: Optional[float] = None, correlation_id: str = "") -> List[Union[Any, GatewayError]]:
        """Calls ``tool`` once per argument set in ``items`` (spread over the pool's workers,
        ``chunk`` sets per worker call; 0: the gateway's default of 64).

        Returns:
            One outcome per item, in order: the decoded result, or a :class:`GatewayError`
            (returned, not raised) for an item that failed.

        Raises:
            GatewayError: the whole call failed (unknown pool, deadline, gateway limit, ...).
        """
        request = _map_request(pool, tool, items, chunk, correlation_id)
        return _map_outcomes(request, self._unary(self._stub.Map, request, timeout))

    def stream(self, pool: str, tool: str, /, *, session: Optional[str] = None, timeout: Optional[float] = None,
               window: int = 0, correlation_id: str = "", metadata: Optional[Mapping[str, str]] = None,
               **arguments: Any) -> CallStream:
        """Calls the generator tool ``tool`` and returns its items as an iterator
        (:class:`CallStream`); ``timeout`` bounds the whole stream, ``window`` is the number of
        items in flight before the client acknowledges (0: the pool's setting).

        Arguments named like the keywords: use :meth:`stream_with`.
        """
        return self.stream_with(pool, tool, arguments, session=session, timeout=timeout, window=window,
                                correlation_id=correlation_id, metadata=metadata)

    def stream_with(self, pool: str, tool: str, arguments: Mapping[str, Any], *, session: Optional[str] = None,
                    timeout: Optional[float] = None, window: int = 0, correlation_id: str = "",
                    metadata: Optional[Mapping[str, str]] = None) -> CallStream:
        """:meth:`stream` with the arguments as a mapping (any names)."""
        request = _call_request(pool, tool, arguments, session, correlation_id, metadata, window)
        call = self._stub.Stream(request, timeout=self._conn.deadline(timeout), metadata=self._conn.metadata)
        return CallStream(call)

    def open_session(self, pool: str, session_id: str = "", *, timeout: Optional[float] = None) -> str:
        """Opens a session on ``pool`` (a fresh id when ``session_id`` is empty); returns its id."""
        return _opened(self._unary(self._stub.OpenSession, _session_request(pool, session_id), timeout))

    def close_session(self, pool: str, session_id: str, *, timeout: Optional[float] = None) -> bool:
        """Closes a session; True when it was open."""
        return _closed(self._unary(self._stub.CloseSession, _session_request(pool, session_id), timeout))

    @contextlib.contextmanager
    def session(self, pool: str, session_id: str = "") -> Iterator[str]:
        """Opens a session for the ``with`` block, yields its id, and closes it at the end."""
        opened = self.open_session(pool, session_id)
        try:
            yield opened
        finally:
            self.close_session(pool, opened)

    def pools(self, *, timeout: Optional[float] = None) -> List[Dict[str, Any]]:
        """The tree's pools: dicts with ``name``, ``state``, ``size``, ``ready``, ``busy``,
        ``queued``, ``profile``, ``adapter`` and ``tools`` (dicts with ``name``,
        ``description``, ``parameters``, ``returns``, ``streaming``, ``idempotent``; empty when
        the gateway did not list them)."""
        return _pools(self._unary(self._stub.ListPools, gw.ListPoolsRequest(), timeout))

    def status(self, pool: str = "", *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """One pool's status (every pool's when ``pool`` is empty), as ``snakepit inspect --json``
        prints it (``docs/telemetry.md``, "Status document")."""
        return _status(self._unary(self._stub.Status, gw.StatusRequest(pool=pool), timeout))

    def close(self) -> None:
        """Closes the channel: calls and streams still open are cancelled."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


# --- the asyncio client -----------------------------------------------------------------------

class AsyncCallStream(_StreamState, AsyncIterator[Any]):
    """The items of one :meth:`AsyncClient.stream` call: an async iterator, as
    :class:`CallStream` is an iterator. ``await stream.aclose()`` (or ``async with``) cancels
    an unfinished stream; so does dropping the last reference."""

    def __aiter__(self) -> "AsyncCallStream":
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        try:
            reply = await self._call.read()
        except grpc.RpcError as exc:
            raise self._cut(_status_error(exc)) from None
        if reply is grpc.aio.EOF:
            raise self._cut(GatewayError(TRANSPORT, _STREAM_CUT))
        is_item, item = self._take(reply)
        if is_item:
            return item
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """:meth:`cancel`, for ``contextlib.aclosing`` and the like."""
        self.cancel()

    async def __aenter__(self) -> "AsyncCallStream":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.cancel()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.cancel()


class AsyncClient:
    """The asyncio twin of :class:`Client` (``grpc.aio``): the same arguments, and the same
    operations as coroutines, ``stream`` returning an async iterator. Create it in the event
    loop that uses it, e.g. ``async with AsyncClient(address) as client: ...``."""

    def __init__(self, address: str, *, token: Optional[str] = None, token_file: Optional[str] = None,
                 root_certificates: Optional[bytes] = None, private_key: Optional[bytes] = None,
                 certificate_chain: Optional[bytes] = None, timeout: Optional[float] = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 options: Sequence[Tuple[str, Any]] = ()) -> None:
        self._conn = _Connection(address, token, token_file, root_certificates, private_key, certificate_chain,
                                 timeout, max_message_bytes, options)
        if self._conn.credentials is not None:
            self._channel = grpc.aio.secure_channel(address, self._conn.credentials, options=self._conn.options)
        else:
            self._channel = grpc.aio.insecure_channel(address, options=self._conn.options)
        self._stub = gw_grpc.GatewayStub(self._channel)

    @property
    def address(self) -> str:
        return self._conn.address

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._conn.address!r})"

    async def _unary(self, method: Any, request: Any, timeout: Optional[float]) -> Any:
        try:
            return await method(request, timeout=self._conn.deadline(timeout), metadata=self._conn.metadata)
        except grpc.RpcError as exc:
            raise _status_error(exc) from None

    async def call(self, pool: str, tool: str, /, *, session: Optional[str] = None,
                   timeout: Optional[float] = None, correlation_id: str = "",
                   metadata: Optional[Mapping[str, str]] = None, **arguments: Any) -> Any:
        """:meth:`Client.call`."""
        return await self.call_with(pool, tool, arguments, session=session, timeout=timeout,
                                    correlation_id=correlation_id, metadata=metadata)

    async def call_with(self, pool: str, tool: str, arguments: Mapping[str, Any], *,
                        session: Optional[str] = None, timeout: Optional[float] = None, correlation_id: str = "",
                        metadata: Optional[Mapping[str, str]] = None) -> Any:
        """:meth:`Client.call_with`."""
        request = _call_request(pool, tool, arguments, session, correlation_id, metadata)
        return _call_result(await self._unary(self._stub.Call, request, timeout))

    async def map(self, pool: str, tool: str, items: Iterable[Mapping[str, Any]], *, chunk: int = 0,
                  timeout: Optional[float] = None, correlation_id: str = "") -> List[Union[Any, GatewayError]]:
        """:meth:`Client.map`."""
        request = _map_request(pool, tool, items, chunk, correlation_id)
        return _map_outcomes(request, await self._unary(self._stub.Map, request, timeout))

    def stream(self, pool: str, tool: str, /, *, session: Optional[str] = None, timeout: Optional[float] = None,
               window: int = 0, correlation_id: str = "", metadata: Optional[Mapping[str, str]] = None,
               **arguments: Any) -> AsyncCallStream:
        """:meth:`Client.stream`, as an async iterator: ``async for item in client.stream(...)``."""
        return self.stream_with(pool, tool, arguments, session=session, timeout=timeout, window=window,
                                correlation_id=correlation_id, metadata=metadata)

    def stream_with(self, pool: str, tool: str, arguments: Mapping[str, Any], *, session: Optional[str] = None,
                    timeout: Optional[float] = None, window: int = 0, correlation_id: str = "",
                    metadata: Optional[Mapping[str, str]] = None) -> AsyncCallStream:
        """:meth:`Client.stream_with`, as an async iterator."""
        request = _call_request(pool, tool, arguments, session, correlation_id, metadata, window)
        call = self._stub.Stream(request, timeout=self._conn.deadline(timeout), metadata=self._conn.metadata)
        return AsyncCallStream(call)

    async def open_session(self, pool: str, session_id: str = "", *, timeout: Optional[float] = None) -> str:
        """:meth:`Client.open_session`."""
        return _opened(await self._unary(self._stub.OpenSession, _session_request(pool, session_id), timeout))

    async def close_session(self, pool: str, session_id: str, *, timeout: Optional[float] = None) -> bool:
        """:meth:`Client.close_session`."""
        return _closed(await self._unary(self._stub.CloseSession, _session_request(pool, session_id), timeout))

    @contextlib.asynccontextmanager
    async def session(self, pool: str, session_id: str = "") -> AsyncIterator[str]:
        """:meth:`Client.session`: ``async with client.session(pool) as session_id: ...``."""
        opened = await self.open_session(pool, session_id)
        try:
            yield opened
        finally:
            await self.close_session(pool, opened)

    async def pools(self, *, timeout: Optional[float] = None) -> List[Dict[str, Any]]:
        """:meth:`Client.pools`."""
        return _pools(await self._unary(self._stub.ListPools, gw.ListPoolsRequest(), timeout))

    async def status(self, pool: str = "", *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """:meth:`Client.status`."""
        return _status(await self._unary(self._stub.Status, gw.StatusRequest(pool=pool), timeout))

    async def close(self) -> None:
        """Closes the channel: calls and streams still open are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


def connect(address: Optional[str] = None, **options: Any) -> Client:
    """A :class:`Client` of ``address``, or of ``$SNAKEPIT_GATEWAY`` when it is None; the other
    keywords are :class:`Client`'s.

    Raises:
        ValueError: no address given and ``SNAKEPIT_GATEWAY`` unset or empty.
    """
    return Client(_address_from_env(address), **options)


def connect_async(address: Optional[str] = None, **options: Any) -> AsyncClient:
    """:func:`connect` for an :class:`AsyncClient` (call it in the event loop that uses it)."""
    return AsyncClient(_address_from_env(address), **options)
