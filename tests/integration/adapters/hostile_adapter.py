"""A worker process that answers the host with what a broken or hostile process could send
(tests/integration/hostile_worker_test.cpp, docs/reliability.md). The environment variable
SNAKEPIT_HOSTILE picks the behaviour; everything else is the showcase adapter:

- ``garbage``: the batch stream's hello is real, every later reply is bytes that are no
  protobuf message;
- ``garbage_unary``: no batch stream (UNIMPLEMENTED), every unary reply is garbage;
- ``wrong_ids``: each call is answered twice, with a result for a call never sent, a
  CANCELLED and a STOPPING result for calls never sent, and the call's own result (42);
- ``never_own``: only results for calls never sent, never the call's own;
- ``oversized``: each call's result is larger than the host's message limit;
- ``flood``: after the hello, unsolicited replies (unknown calls, telemetry events) without
  end, as fast as the stream takes them;
- ``endless_stream``: a stream tool's items ignore the host's credit and never end;
- ``bad_ready``: the ready line's fields have the wrong JSON types.

Nothing here is imported by snakepit itself.
"""

import asyncio
import os
import sys

import grpc

from snakepit_bridge import server
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge._wire import bridge_pb2_grpc as pb_grpc
from snakepit_bridge.showcase import ShowcaseAdapter

MODE = os.environ.get("SNAKEPIT_HOSTILE", "")
GARBAGE = b"\xff\xff\xff\xff\x0f\x08" * 4  # an invalid varint tag, then truncated fields


def _raw(message):
    """Serializes a message, or passes bytes through as they are: garbage goes on the wire."""
    return message if isinstance(message, bytes) else message.SerializeToString()


def _add_servicer(servicer, grpc_server):
    """As bridge_pb2_grpc.add_WorkerServicer_to_server, with replies serialized by _raw."""
    unary = {
        "Execute": (servicer.Execute, pb.ExecuteRequest),
        "ListTools": (servicer.ListTools, pb.ListToolsRequest),
        "Ping": (servicer.Ping, pb.PingRequest),
        "Stop": (servicer.Stop, pb.StopRequest),
        "CloseSession": (servicer.CloseSession, pb.CloseSessionRequest),
    }
    streams = {
        "ExecuteStream": (servicer.ExecuteStream, pb.StreamRequest),
        "ExecuteBatches": (servicer.ExecuteBatches, pb.BatchRequest),
    }
    handlers = {}
    for name, (method, request) in unary.items():
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            method, request_deserializer=request.FromString, response_serializer=_raw)
    for name, (method, request) in streams.items():
        handlers[name] = grpc.stream_stream_rpc_method_handler(
            method, request_deserializer=request.FromString, response_serializer=_raw)
    grpc_server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("snakepit.bridge.v1.Worker", handlers),))


async def _not_served(self, request_iterator, context):
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")


async def _garbage_batches(self, request_iterator, context):
    yield pb.BatchReply()  # hello: the host takes the worker as ready
    async for _ in request_iterator:
        yield GARBAGE


async def _garbage_execute(self, request, context):
    return GARBAGE


def _result(seq, value=42, skipped=pb.NOT_SKIPPED):
    result = pb.BatchResult(seq=seq, skipped=skipped)
    result.response.result.int_value = value
    return result


async def _wrong_ids(self, request_iterator, context):
    yield pb.BatchReply()
    async for batch in request_iterator:
        for call in batch.calls:
            seq = call.seq
            yield pb.BatchReply(results=[_result(seq + 1_000_000, 7), _result(2**64 - 1, 7),
                                         _result(seq + 2_000_000, 7, pb.CANCELLED),
                                         _result(seq + 3_000_000, 7, pb.STOPPING)])
            yield pb.BatchReply(results=[_result(seq), _result(seq, 7)])
            yield pb.BatchReply(results=[_result(seq, 7)])


async def _never_own(self, request_iterator, context):
    yield pb.BatchReply()
    async for batch in request_iterator:
        for call in batch.calls:
            yield pb.BatchReply(results=[_result(call.seq + 1_000_000, 7)])


async def _oversized(self, request_iterator, context):
    yield pb.BatchReply()
    size = int(os.environ.get("SNAKEPIT_HOSTILE_BYTES", str(4 * 1024 * 1024)))
    async for batch in request_iterator:
        for call in batch.calls:
            result = pb.BatchResult(seq=call.seq)
            result.response.result.bytes_value = b"x" * size
            yield pb.BatchReply(results=[result])


async def _flood(self, request_iterator, context):
    yield pb.BatchReply()
    reader = asyncio.ensure_future(_drain(request_iterator))
    try:
        n = 0
        while True:
            n += 1
            reply = pb.BatchReply(results=[_result(10**12 + n, n)])
            event = reply.telemetry.events.add()
            event.name = "flood"
            event.measurements["n"] = float(n)
            yield reply
            if n % 64 == 0:
                await asyncio.sleep(0)
    finally:
        reader.cancel()


async def _drain(request_iterator):
    async for _ in request_iterator:
        pass


async def _endless_stream(self, request_iterator, context):
    async for request in request_iterator:
        if request.HasField("start"):
            break
    n = 0
    while True:
        n += 1
        yield pb.StreamReply(item=pb.Value(int_value=n))
        if n % 64 == 0:
            await asyncio.sleep(0)


def _bad_ready():
    main = sys.modules.get("__main__")
    for module in (main, sys.modules.get("snakepit_bridge.worker")):
        report = getattr(module, "_report", None)
        if report is None or getattr(report, "hostile", False):
            continue

        def hostile_report(fd, line, _report=report):
            if line.get("status") == "ready":
                line = dict(line, python_version=3, implementation=["x"], gil_enabled="yes",
                            free_threaded=None, warnings={"a": 1})
            _report(fd, line)

        hostile_report.hostile = True
        module._report = hostile_report


server.pb_grpc = type("hostile_pb_grpc", (), {"add_WorkerServicer_to_server": staticmethod(_add_servicer)})
if MODE == "bad_ready":
    _bad_ready()
else:
    _PATCHES = {
        "garbage": {"ExecuteBatches": _garbage_batches},
        "garbage_unary": {"ExecuteBatches": _not_served, "Execute": _garbage_execute},
        "wrong_ids": {"ExecuteBatches": _wrong_ids},
        "never_own": {"ExecuteBatches": _never_own},
        "oversized": {"ExecuteBatches": _oversized},
        "flood": {"ExecuteBatches": _flood},
        "endless_stream": {"ExecuteStream": _endless_stream},
    }
    for _name, _method in _PATCHES.get(MODE, {}).items():
        setattr(server.WorkerService, _name, _method)

class HostileAdapter(ShowcaseAdapter):
    """The showcase's tools, behind a server that misbehaves as SNAKEPIT_HOSTILE says."""
