"""The gRPC side of a worker: service ``Worker`` on a unix socket, served by ``grpc.aio``.

Every RPC is a coroutine on one event loop. Sync tools run in the dispatcher's thread pool and
``async def`` tools are awaited, so ``Ping``, ``ListTools`` and ``Stop`` are answered at once,
never queued behind tools (a CPU-bound sync tool still lets the loop run between GIL switches;
an ``async def`` tool that never awaits does block it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from typing import TYPE_CHECKING, AsyncIterator, Optional

import grpc

from snakepit_bridge import streaming, telemetry
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge._wire import bridge_pb2_grpc as pb_grpc
from snakepit_bridge.adapter import BaseAdapter
from snakepit_bridge.batches import BatchStream
from snakepit_bridge.dispatch import Dispatcher
from snakepit_bridge.runtime import runtime_info
from snakepit_bridge.sessions import DEFAULT_MAX_SESSIONS
from snakepit_bridge.tools import wire_spec

if TYPE_CHECKING:
    from snakepit_bridge.host import HostClient

__all__ = ["WorkerServer", "WorkerService", "runtime_info", "rss_bytes"]

#: Room for the envelope around a payload of ``max_message_bytes`` in gRPC's message limits.
ENVELOPE_BYTES = 65536

#: How long a graceful stop waits for the last responses to be written (idle worker).
RESPONSE_FLUSH_S = 0.25

#: The longest unix socket path the kernel accepts (sun_path is 108 bytes with the NUL).
SOCKET_PATH_BYTES_MAX = 107


def rss_bytes() -> int:
    """This process's resident set size from /proc/self/statm (0 where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class WorkerService(pb_grpc.WorkerServicer):
    """Service ``snakepit.bridge.v1.Worker`` over one :class:`Dispatcher`."""

    def __init__(self, owner: "WorkerServer") -> None:
        self._owner = owner
        dispatcher = owner.dispatcher
        tools = [wire_spec(definition.spec) for definition in dispatcher.tools.values()]
        self._tools = pb.ListToolsResponse(adapter=owner.adapter_path, tools=tools)
        self._info = runtime_info()

    async def Execute(self, request: pb.ExecuteRequest, context: grpc.aio.ServicerContext) -> pb.ExecuteResponse:
        if self._owner.stopping:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "worker is stopping")
        return await self._owner.dispatcher.execute(request)

    async def ExecuteStream(self, request_iterator: AsyncIterator[pb.StreamRequest],
                            context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StreamReply]:
        # A generator tool's items with credit-based flow control: see snakepit_bridge.streaming.
        if self._owner.stopping:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "worker is stopping")
        async with contextlib.aclosing(streaming.serve(self._owner.dispatcher, request_iterator)) as replies:
            async for reply in replies:
                yield reply

    async def ExecuteBatches(self, request_iterator: AsyncIterator[pb.BatchRequest],
                             context: grpc.aio.ServicerContext) -> AsyncIterator[pb.BatchReply]:
        # The fast path: many calls per message, few thread hand-offs (snakepit_bridge.batches).
        if self._owner.stopping:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "worker is stopping")
        stream = BatchStream(self._owner, self._owner.concurrency)
        async with contextlib.aclosing(stream.serve(request_iterator)) as replies:
            async for reply in replies:
                yield reply

    async def ListTools(self, request: pb.ListToolsRequest, context: grpc.aio.ServicerContext) -> pb.ListToolsResponse:
        return self._tools

    async def Ping(self, request: pb.PingRequest, context: grpc.aio.ServicerContext) -> pb.PingResponse:
        dispatcher = self._owner.dispatcher
        response = pb.PingResponse(
            pid=os.getpid(),
            in_flight=dispatcher.in_flight,
            served=dispatcher.served,
            python_version=self._info["python_version"],
            implementation=self._info["implementation"],
            gil_enabled=self._info["gil_enabled"],
            rss_bytes=rss_bytes(),
        )
        telemetry.attach(response)  # events emitted since the last reply, e.g. by background threads
        return response

    async def CloseSession(self, request: pb.CloseSessionRequest,
                           context: grpc.aio.ServicerContext) -> pb.CloseSessionResponse:
        # Answered once on_session_closed has run (in a tool thread, after the session's calls
        # in flight here); `known`: this worker had state for the session.
        known = await self._owner.dispatcher.close_session(request.session_id, request.reason)
        return pb.CloseSessionResponse(known=known)

    async def Stop(self, request: pb.StopRequest, context: grpc.aio.ServicerContext) -> pb.StopResponse:
        grace_s = max(0, request.grace_ms) / 1000.0
        # Begin once this response is on its way, so the caller always gets it.
        context.add_done_callback(lambda _: self._owner.request_stop(grace_s))
        return pb.StopResponse()


class WorkerServer:
    """Owns the gRPC server of one worker and its graceful stop.

    Args:
        adapter: the adapter instance, already set up.
        adapter_path: its dotted path, reported by ``ListTools``.
        socket_path: where to listen (``unix:<socket_path>``).
        concurrency: tool calls that run at once.
        max_message_bytes: the payload limit; gRPC's own limits are this plus
            :data:`ENVELOPE_BYTES`, both ways.
        worker_id: the host's id for this worker.
        thread_check: the thread-safety checker's mode: ``"off"``, ``"warn"`` or ``"strict"``.
        max_sessions: session states the worker keeps at most (``--max-sessions``).
        host: the channel to the host's tools (``--host-socket``), given to tools through
            their ``CallContext``; None when the pool has none.
    """

    def __init__(self, adapter: BaseAdapter, *, adapter_path: str, socket_path: str, concurrency: int,
                 max_message_bytes: int, worker_id: str, thread_check: str = "off",
                 max_sessions: int = DEFAULT_MAX_SESSIONS, host: Optional["HostClient"] = None) -> None:
        self.adapter_path = adapter_path
        self.socket_path = socket_path
        self.max_message_bytes = max_message_bytes
        self.concurrency = concurrency
        self.dispatcher = Dispatcher(adapter, concurrency=concurrency, max_payload_bytes=max_message_bytes,
                                     worker_id=worker_id, thread_check=thread_check, max_sessions=max_sessions,
                                     host=host)
        self.stopping = False
        self._server: Optional[grpc.aio.Server] = None
        self._stop_grace_s: Optional[asyncio.Future] = None

    async def start(self) -> None:
        """Binds the socket and starts serving.

        Raises:
            OSError: the socket path is too long, or taken by something that is not a socket.
            RuntimeError: gRPC could not bind.
        """
        path = self.socket_path
        if len(os.fsencode(path)) > SOCKET_PATH_BYTES_MAX:
            raise OSError(f"socket path is {len(os.fsencode(path))} bytes; unix socket paths are limited "
                          f"to {SOCKET_PATH_BYTES_MAX} bytes: {path}")
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # left behind by a killed worker
            else:
                raise OSError(f"{path} exists and is not a socket")
        except FileNotFoundError:
            pass
        limit = self.max_message_bytes + ENVELOPE_BYTES
        self._stop_grace_s = asyncio.get_running_loop().create_future()
        self._server = grpc.aio.server(options=[
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
        ])
        pb_grpc.add_WorkerServicer_to_server(WorkerService(self), self._server)
        if self._server.add_insecure_port(f"unix:{path}") == 0:
            raise RuntimeError(f"gRPC could not bind unix:{path}")
        await self._server.start()

    def request_stop(self, grace_s: float) -> None:
        """Asks for a graceful stop (Stop RPC, SIGTERM); the first request's grace wins."""
        if self._stop_grace_s is not None and not self._stop_grace_s.done():
            self._stop_grace_s.set_result(grace_s)

    async def serve_until_stopped(self) -> None:
        """Serves until :meth:`request_stop`, then refuses new tool calls (``UNAVAILABLE``; pings
        are still answered) and lets those in flight finish for up to the grace period; calls
        still running then are cancelled.

        The drain is tracked here rather than left to ``server.stop(grace)``, which waits out the
        whole grace while any client connection is open, even an idle one.
        """
        assert self._server is not None and self._stop_grace_s is not None
        grace_s = await self._stop_grace_s
        self.stopping = True
        idle = await self.dispatcher.wait_idle(grace_s)
        # A finished call's response may not be written yet when the dispatcher is idle:
        # a short grace lets gRPC flush it instead of cancelling it.
        await self._server.stop(RESPONSE_FLUSH_S if idle else None)
        self.dispatcher.close()
        try:
            os.unlink(self.socket_path)
        except OSError:
            pass
