"""The smallest Python server of snakepit's wire, for the latency decomposition.

Serves ``Worker.Execute`` with ``grpc.aio`` on a unix socket and answers every call with an empty
``ExecuteResponse``: no dispatcher, no argument decoding, no tool. With ``--executor`` each call
first makes the same hop a sync snakepit tool makes (``loop.run_in_executor`` into a one-thread
``ThreadPoolExecutor`` and back), so the difference between the two modes is the price of that
hop alone. ``--mode executor-encode`` and ``--mode dispatcher`` (for manual digging) add the
result encoding of a snakepit pool thread, or run snakepit_bridge's whole ``Dispatcher``;
``--mode sync-server`` serves with the synchronous ``grpc.server`` and a thread pool instead, the
handler doing the same encoding on the gRPC thread (one hop fewer than the executor modes).

Started by latency_bench like a worker: ``--socket PATH --ready-fd 3 --lifeline-fd 4``; it writes
one line on the ready fd once it serves, and exits when the lifeline reaches end-of-file.

    PYTHONPATH=python /usr/bin/python3 bench/min_aio_server.py --socket /tmp/x.sock [--executor]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge._wire import bridge_pb2_grpc as pb_grpc


def _nothing() -> None:
    return None


def _encode_like_snakepit() -> pb.ExecuteResponse:
    """What a snakepit pool thread does for a no-op tool besides calling it."""
    from snakepit_bridge import values

    value = values.encode(None, what="result of tool 'noop'", where="result")
    value.ByteSize()
    response = pb.ExecuteResponse(result=value)
    response.wall_ns = time.perf_counter_ns()
    response.cpu_ns = time.thread_time_ns()
    return response


class _Service(pb_grpc.WorkerServicer):
    def __init__(self, mode: str) -> None:
        self._mode = mode
        self._executor = ThreadPoolExecutor(max_workers=1) if mode != "inline" else None
        self._dispatcher = None
        if mode == "dispatcher":
            from snakepit_bridge.dispatch import Dispatcher
            from snakepit_bridge.showcase import ShowcaseAdapter

            self._dispatcher = Dispatcher(ShowcaseAdapter(), concurrency=1, max_payload_bytes=64 << 20)

    async def Execute(self, request: pb.ExecuteRequest, context: grpc.aio.ServicerContext) -> pb.ExecuteResponse:
        if self._mode == "executor":
            await asyncio.get_running_loop().run_in_executor(self._executor, _nothing)
        elif self._mode == "executor-encode":
            return await asyncio.get_running_loop().run_in_executor(self._executor, _encode_like_snakepit)
        elif self._mode == "dispatcher":
            return await self._dispatcher.execute(request)
        return pb.ExecuteResponse()


class _SyncService(pb_grpc.WorkerServicer):
    """For ``--mode sync-server``: a plain ``grpc.server`` whose pool thread runs the tool and
    encodes its result itself (no event loop, no second hop)."""

    def Execute(self, request: pb.ExecuteRequest, context: grpc.ServicerContext) -> pb.ExecuteResponse:
        return _encode_like_snakepit()


def _serve_sync(args: argparse.Namespace) -> None:
    from concurrent.futures import ThreadPoolExecutor as Pool

    server = grpc.server(Pool(max_workers=2))  # one call at a time plus a free thread for pings
    pb_grpc.add_WorkerServicer_to_server(_SyncService(), server)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    server.add_insecure_port(f"unix:{args.socket}")
    server.start()
    if args.ready_fd is not None:
        os.write(args.ready_fd, b'{"status": "ready"}\n')
        os.close(args.ready_fd)
    server.wait_for_termination()


def _watch_lifeline(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 4096):
                break
        except OSError:
            break
    os._exit(70)


async def _serve(args: argparse.Namespace) -> None:
    mode = "executor" if args.executor else args.mode
    server = grpc.aio.server()
    pb_grpc.add_WorkerServicer_to_server(_Service(mode), server)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    server.add_insecure_port(f"unix:{args.socket}")
    await server.start()
    if args.ready_fd is not None:
        os.write(args.ready_fd, b'{"status": "ready"}\n')
        os.close(args.ready_fd)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--executor", action="store_true", help="same as --mode executor")
    parser.add_argument("--mode", default="inline",
                        choices=["inline", "executor", "executor-encode", "dispatcher", "sync-server"],
                        help="inline: answer on the loop; executor: one run_in_executor hop; "
                             "executor-encode: the hop plus the encoding a snakepit pool thread does; "
                             "dispatcher: snakepit_bridge's own Dispatcher (sync tool noop); "
                             "sync-server: grpc.server with a thread pool instead of grpc.aio, the "
                             "handler encoding like executor-encode")
    parser.add_argument("--ready-fd", type=int)
    parser.add_argument("--lifeline-fd", type=int)
    args = parser.parse_args()
    if args.lifeline_fd is not None:
        threading.Thread(target=_watch_lifeline, args=(args.lifeline_fd,), daemon=True).start()
    if args.mode == "sync-server":
        _serve_sync(args)
    else:
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
