"""Calling the host's tools from Python: C++ functions registered with the pool (``docs/host-tools.md``).

The host serves service ``Host`` on a unix socket of its own and starts each worker with
``--host-socket PATH``. One :class:`HostClient` per worker process holds the gRPC channel to
it (created on first use, shared by every thread); tools reach it through their
:class:`~snakepit_bridge.CallContext` (``ctx.host_tools()``, ``ctx.call_host(...)``,
``await ctx.acall_host(...)``), which bound each call by the tool's own deadline.

The wire contract, for the host's side::

    ListHostTools(ListHostToolsRequest{worker_id}) -> ListHostToolsResponse{tools}
    CallHostTool(HostToolRequest{tool, arguments, timeout_ms, worker_id, request_id, session_id})
        -> HostToolResponse{result | error{kind, message}}

Arguments and results use the encoding of tool arguments and results (:mod:`snakepit_bridge.values`).
With shared memory on (``--shm-dir``), large arguments go in segments that this side removes
once the call returns (it is their sender); segments in a result are the receiver's, so they
are removed as soon as they are mapped.
``timeout_ms`` is the time left for the call when it was sent (0: none), and the gRPC deadline
is the same instant. A failed host tool is an ``error`` in an OK response; every failure,
including gRPC ones, reaches the tool as :class:`~snakepit_bridge.errors.HostToolError`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Tuple

import grpc

from snakepit_bridge import shm, values
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge._wire import bridge_pb2_grpc as pb_grpc
from snakepit_bridge.context import NO_HOST_MESSAGE
from snakepit_bridge.errors import (
    HOST_UNAVAILABLE,
    INTERNAL,
    PAYLOAD_TOO_LARGE,
    TIMEOUT,
    BridgeError,
    HostToolError,
)
from snakepit_bridge.server import ENVELOPE_BYTES
from snakepit_bridge.tools import ParameterSpec

__all__ = ["HostClient", "HostToolSpec", "HostToolError", "NO_HOST_MESSAGE", "LIST_TIMEOUT_S"]

#: How long listing the host's tools may take when the calling tool has no deadline.
LIST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class HostToolSpec:
    """One host tool, as ``ListHostTools`` describes it.

    Attributes:
        name: what ``ctx.call_host`` takes.
        description: what it does (may be empty).
        parameters: its parameters, with the type spellings of Python tools (``"int"``,
            ``"list[str]"``, ``"any"``...); ``default`` is meaningful when ``has_default``.
        returns: the type of its result, same spelling.
    """

    name: str
    description: str
    parameters: Tuple[ParameterSpec, ...]
    returns: str


class HostClient:
    """The channel of one worker process to the host's ``Host`` service.

    The channel is created on first use and shared by every thread (gRPC channels are
    thread-safe); the tool list is fetched once and cached. Calls are blocking (``async def``
    tools make them in a helper thread: ``ctx.acall_host``).

    Args:
        socket_path: the host's unix socket (``--host-socket``).
        max_message_bytes: the payload limit (``--max-message-bytes``): arguments over it are
            refused before sending, and gRPC's limits are this plus :data:`ENVELOPE_BYTES`.
        worker_id: sent with every request (``--worker-id``).
    """

    def __init__(self, socket_path: str, *, max_message_bytes: int, worker_id: str = "") -> None:
        if not socket_path:
            raise ValueError("socket_path must not be empty")
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        self.socket_path = socket_path
        self.max_message_bytes = max_message_bytes
        self.worker_id = worker_id
        self._lock = threading.Lock()
        self._channel: Optional[grpc.Channel] = None
        self._stub: Optional[pb_grpc.HostStub] = None
        self._tools: Optional[List[HostToolSpec]] = None

    @property
    def target(self) -> str:
        """The gRPC target, ``unix:<socket_path>``."""
        return f"unix:{self.socket_path}"

    def _get_stub(self) -> pb_grpc.HostStub:
        with self._lock:
            if self._stub is None:
                limit = self.max_message_bytes + ENVELOPE_BYTES
                self._channel = grpc.insecure_channel(self.target, options=[
                    ("grpc.max_send_message_length", limit),
                    ("grpc.max_receive_message_length", limit),
                ])
                self._stub = pb_grpc.HostStub(self._channel)
            return self._stub

    def close(self) -> None:
        """Closes the channel (a later call opens a new one)."""
        with self._lock:
            channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            channel.close()

    def list_tools(self, timeout_s: Optional[float] = None) -> List[HostToolSpec]:
        """The host's tools, sorted by name; asked once, then cached.

        Args:
            timeout_s: how long the first (uncached) request may take (default
                :data:`LIST_TIMEOUT_S`).

        Raises:
            HostToolError: the host could not be asked (kinds ``unavailable``, ``timeout``...).
        """
        cached = self._tools
        if cached is not None:
            return list(cached)
        seconds = LIST_TIMEOUT_S if timeout_s is None else timeout_s
        if seconds <= 0:
            raise HostToolError(TIMEOUT, "no time left to list the host tools: the calling tool's deadline has passed")
        try:
            response = self._get_stub().ListHostTools(pb.ListHostToolsRequest(worker_id=self.worker_id),
                                                      timeout=seconds)
        except grpc.RpcError as exc:
            raise self._transport_error(exc, "listing the host tools", "", seconds) from None
        tools = sorted((_spec(message) for message in response.tools), key=lambda spec: spec.name)
        self._tools = tools
        return list(tools)

    def call(self, name: str, /, **arguments: Any) -> Any:
        """Calls host tool ``name`` with keyword arguments, without a deadline; see :meth:`call_with`."""
        return self.call_with(name, arguments)

    def call_with(self, name: str, arguments: Mapping[str, Any], *, timeout_s: Optional[float] = None,
                  request_id: str = "", session_id: str = "") -> Any:
        """Calls host tool ``name`` and returns its decoded result.

        Args:
            name: the host tool.
            arguments: its arguments by name, encoded as tool arguments are.
            timeout_s: how long the host may take (None: no limit); sent as ``timeout_ms`` and
                used as the gRPC deadline.
            request_id: the Python call this one runs in (for the host's logs).
            session_id: that call's session, if any.

        Raises:
            HostToolError: the host tool failed (its kind and message), the arguments cannot
                be sent (``encode_failed``, ``payload_too_large``), the time ran out
                (``timeout``) or the host cannot be reached (``unavailable``).
        """
        if timeout_s is not None and timeout_s <= 0:
            raise HostToolError(TIMEOUT, f"no time left to call host tool '{name}': the calling tool's deadline "
                                         "has passed", tool=name)
        created: List[str] = []  # our arguments' shared memory segments: the sender frees them
        try:
            request = self._request(name, arguments, timeout_s, request_id, session_id, created)
            try:
                response = self._get_stub().CallHostTool(request, timeout=timeout_s)
            except grpc.RpcError as exc:
                raise self._transport_error(exc, f"calling host tool '{name}'", name, timeout_s) from None
        finally:
            shm.unlink(created)
        if response.WhichOneof("outcome") == "error":
            error = response.error
            raise HostToolError(_kind(error.kind), error.message or f"host tool '{name}' failed without a message",
                                tool=name)
        size = response.result.ByteSize()
        if size > self.max_message_bytes:
            shm.unlink(values.segment_names(response.result))  # a result's segments are ours to free
            raise HostToolError(PAYLOAD_TOO_LARGE, f"result of host tool '{name}' is {size} bytes, over the payload "
                                                   f"limit of {self.max_message_bytes} bytes (--max-message-bytes)",
                                tool=name)
        try:
            return values.decode(response.result, where="result", take=True)
        except BridgeError as exc:
            raise HostToolError(INTERNAL, f"host tool '{name}' returned a result that cannot be decoded: "
                                          f"{exc.message}", tool=name) from None

    def _request(self, name: str, arguments: Mapping[str, Any], timeout_s: Optional[float], request_id: str,
                 session_id: str, created: List[str]) -> pb.HostToolRequest:
        try:
            encoded = values.encode_map(arguments, what=f"arguments of host tool '{name}'", created=created)
        except BridgeError as exc:
            raise HostToolError(exc.kind, exc.message, tool=name) from None
        size = encoded.ByteSize()
        if size > self.max_message_bytes:
            raise HostToolError(PAYLOAD_TOO_LARGE, f"arguments of host tool '{name}' are {size} bytes, over the "
                                                   f"payload limit of {self.max_message_bytes} bytes "
                                                   "(--max-message-bytes)", tool=name)
        timeout_ms = 0 if timeout_s is None else max(1, math.ceil(timeout_s * 1000))
        return pb.HostToolRequest(tool=name, arguments=encoded, timeout_ms=timeout_ms, worker_id=self.worker_id,
                                  request_id=request_id, session_id=session_id)

    def _transport_error(self, exc: grpc.RpcError, doing: str, name: str, timeout_s: Optional[float]) -> HostToolError:
        """A failed RPC as a :class:`HostToolError` saying what happened."""
        code = exc.code() if isinstance(exc, grpc.Call) else None
        details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            waited = f"within {math.ceil(timeout_s * 1000)} ms " if timeout_s is not None else ""
            return HostToolError(TIMEOUT, f"{doing}: no answer {waited}(the calling tool's time left, or timeout_s)",
                                 tool=name)
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            return HostToolError(PAYLOAD_TOO_LARGE, f"{doing}: a message is over the limit of "
                                                    f"{self.max_message_bytes} bytes (--max-message-bytes): {details}",
                                 tool=name)
        if code is grpc.StatusCode.UNIMPLEMENTED:
            return HostToolError(HOST_UNAVAILABLE, f"{doing}: the host at {self.target} does not serve host tools "
                                                   f"(UNIMPLEMENTED: {details})", tool=name)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return HostToolError(HOST_UNAVAILABLE, f"{doing}: cannot reach the host at {self.target} "
                                                   f"({code.name}: {details})", tool=name)
        status = code.name if code is not None else "no status"
        return HostToolError(INTERNAL, f"{doing}: the host's gRPC call failed ({status}: {details})", tool=name)


def _kind(number: int) -> str:
    """A wire ``ErrorKind`` as a kind string; unset or unknown (a newer host's) is ``internal``."""
    try:
        return pb.ErrorKind.Name(number).lower() if number else INTERNAL
    except ValueError:
        return INTERNAL


def _spec(message: pb.ToolSpec) -> HostToolSpec:
    parameters = []
    for parameter in message.parameters:
        has_default = not parameter.required and parameter.HasField("default_value")
        default = values.decode(parameter.default_value, where=parameter.name, take=True) if has_default else None
        parameters.append(ParameterSpec(parameter.name, parameter.type or "any", parameter.required, default=default,
                                        has_default=has_default, description=parameter.description))
    return HostToolSpec(message.name, message.description, tuple(parameters), message.returns or "any")

