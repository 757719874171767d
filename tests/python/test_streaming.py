"""Streaming tools: generator tools served through ExecuteStream by a real worker over gRPC
(items, end, errors, credits, cancellation, deadlines, payload limit, capacity), and through
AdapterTestClient.stream."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid
from typing import Any, AsyncIterator, Generator, Iterable, Iterator, List, Optional

import grpc
import pytest

from bridge_helpers import call, result_of
from snakepit_bridge import AdapterTestClient, BaseAdapter, CallContext, ToolCallError, tool
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.showcase import ShowcaseAdapter
from snakepit_bridge.values import decode, encode_map

WAIT_S = 10.0


class Stream:
    """One ExecuteStream call over gRPC, driven message by message as the host does."""

    def __init__(self, stub, tool: str, *, credit: int = 1, timeout_ms: int = 0, correlation_id: str = "",
                 first: Optional[pb.StreamRequest] = None, **arguments: Any) -> None:
        self.request_id = uuid.uuid4().hex
        self._requests: "queue.Queue[Optional[pb.StreamRequest]]" = queue.Queue()
        start = pb.ExecuteRequest(request_id=self.request_id, tool=tool, arguments=encode_map(arguments),
                                  stream_credit=credit, timeout_ms=timeout_ms, correlation_id=correlation_id)
        self._requests.put(first if first is not None else pb.StreamRequest(start=start))
        self.call = stub.ExecuteStream(self._iterate(), timeout=60)

    def _iterate(self) -> Iterator[pb.StreamRequest]:
        while True:
            message = self._requests.get()
            if message is None:
                return
            yield message

    def grant(self, credit: int) -> None:
        self._requests.put(pb.StreamRequest(credit=credit))

    def cancel(self) -> None:
        self._requests.put(pb.StreamRequest(cancel=True))

    def half_close(self) -> None:
        self._requests.put(None)

    def send(self, message: pb.StreamRequest) -> None:
        self._requests.put(message)

    def next(self) -> pb.StreamReply:
        return next(self.call)

    def rest(self) -> List[pb.StreamReply]:
        """Every reply until the RPC ends (it must end with status OK)."""
        replies = list(self.call)
        assert self.call.code() == grpc.StatusCode.OK
        self.half_close()
        return replies


def items_of(replies: Iterable[pb.StreamReply]) -> List[Any]:
    return [decode(reply.item) for reply in replies if reply.WhichOneof("kind") == "item"]


def consume(stream: Stream) -> List[pb.StreamReply]:
    """Reads the whole stream, granting one credit per item as a consumer-paced host does."""
    replies = []
    while True:
        reply = stream.next()
        replies.append(reply)
        if reply.WhichOneof("kind") != "item":
            break
        stream.grant(1)
    replies += stream.rest()
    return replies


def closed_log(stub, request_id: str, timeout_s: float = WAIT_S) -> dict:
    """The stream_closed_log entry of one stream, waiting for it."""
    end = time.monotonic() + timeout_s
    while True:
        entries = [entry for entry in result_of(call(stub, "stream_closed_log")) if entry["request_id"] == request_id]
        if entries:
            assert len(entries) == 1
            return entries[0]
        assert time.monotonic() < end, f"the generator of stream {request_id} was never closed"
        time.sleep(0.02)


# --- over gRPC ---------------------------------------------------------------------------


def test_list_tools_marks_the_streaming_tools(workers):
    stub = workers.start().stub()
    tools = {spec.name: spec for spec in stub.ListTools(pb.ListToolsRequest(), timeout=10).tools}
    assert tools["count"].streaming and tools["count"].returns == "int"
    assert tools["async_count"].streaming and tools["async_count"].returns == "int"
    assert tools["blobs"].streaming and tools["blobs"].returns == "bytes"
    assert [(p.name, p.type, p.required) for p in tools["count"].parameters] == [
        ("n", "int", True), ("delay_ms", "int", False)]
    assert not tools["add"].streaming and not tools["async_sleep"].streaming


@pytest.mark.parametrize("tool_name", ["count", "async_count"])
def test_a_generator_streams_its_items_then_end(workers, tool_name):
    stub = workers.start().stub()
    replies = consume(Stream(stub, tool_name, n=5, delay_ms=1))
    assert items_of(replies) == [0, 1, 2, 3, 4]
    assert [reply.WhichOneof("kind") for reply in replies] == ["item"] * 5 + ["end"]
    end = replies[-1].end
    assert end.items == 5
    assert end.wall_ns >= 4_000_000  # four pauses of 1 ms inside the generator
    assert 0 < end.cpu_ns
    # With credit for everything, the items come without waiting for grants; end needs one more.
    replies = consume(Stream(stub, tool_name, n=3, credit=4))
    assert items_of(replies) == [0, 1, 2] and replies[-1].end.items == 3


def test_an_empty_generator_sends_only_end(workers):
    replies = consume(Stream(workers.start().stub(), "count", n=0))
    assert [reply.WhichOneof("kind") for reply in replies] == ["end"]
    assert replies[0].end.items == 0


def test_an_exception_is_the_last_message_after_the_items(workers):
    stub = workers.start().stub()
    replies = consume(Stream(stub, "fail_after", n=3, credit=10))
    assert items_of(replies) == [0, 1, 2]
    error = replies[-1].error
    assert replies[-1].WhichOneof("kind") == "error"
    assert (error.kind, error.python_type, error.message) == (pb.PYTHON_EXCEPTION, "ValueError", "failed after 3 items")
    assert error.traceback.startswith("Traceback (most recent call last)")
    assert "in fail_after" in error.traceback and "streaming.py" not in error.traceback
    assert result_of(call(stub, "add", a=1, b=2)) == 3  # the worker keeps serving


def test_the_call_is_checked_as_execute_checks_it(workers):
    stub = workers.start().stub()
    [unknown] = Stream(stub, "nope").rest()
    assert unknown.error.kind == pb.UNKNOWN_TOOL
    assert unknown.error.message.startswith("unknown tool 'nope'; known tools: ")
    [missing] = Stream(stub, "count").rest()
    assert (missing.error.kind, missing.error.message) == (pb.BAD_ARGUMENTS, "missing required argument 'n' (int)")
    [wrong] = Stream(stub, "count", n="three").rest()
    assert (wrong.error.kind, wrong.error.message) == (pb.BAD_ARGUMENTS, "argument 'n' must be int, got str")
    [not_start] = Stream(stub, "count", first=pb.StreamRequest(credit=3)).rest()
    assert not_start.error.kind == pb.INTERNAL
    assert not_start.error.message == "the first message of ExecuteStream must be 'start', got credit"


def test_a_second_start_is_a_protocol_error(workers):
    stub = workers.start().stub()
    stream = Stream(stub, "count", n=100, credit=1)
    assert decode(stream.next().item) == 0
    stream.send(pb.StreamRequest(start=pb.ExecuteRequest(tool="count")))
    [error] = stream.rest()
    assert (error.error.kind, error.error.message) == (pb.INTERNAL, "a second 'start' on one ExecuteStream call")


def test_a_tool_that_is_not_a_generator_streams_its_result_as_one_item(workers):
    stub = workers.start().stub()
    for tool_name, arguments, value in [("add", {"a": 2, "b": 3}, 5), ("async_sleep", {"seconds": 0.01}, None)]:
        replies = consume(Stream(stub, tool_name, **arguments))
        assert [reply.WhichOneof("kind") for reply in replies] == ["item", "end"]
        assert replies[1].end.items == 1
        if value is not None:
            assert items_of(replies) == [value]
    failed = consume(Stream(stub, "fail", message="nope"))
    assert [(reply.error.kind, reply.error.message) for reply in failed] == [(pb.PYTHON_EXCEPTION, "nope")]


def test_a_streaming_tool_through_execute_is_refused(workers):
    error = call(workers.start().stub(), "count", n=3).error
    assert error.kind == pb.BAD_ARGUMENTS
    assert error.message == ("tool 'count' streams items; call it with execute_stream (C++) or --stream "
                             "(command line)")


def test_the_generator_is_not_run_ahead_of_the_credits(workers):
    stub = workers.start(concurrency=2).stub()  # a slot for the `pulled` probe next to the stream
    key = uuid.uuid4().hex
    stream = Stream(stub, "count_tracked", n=1000, key=key, credit=1)
    assert decode(stream.next().item) == 0
    time.sleep(0.3)
    assert result_of(call(stub, "pulled", key=key)) == 1  # no credit: the generator waits at its yield
    stream.grant(3)
    assert [decode(stream.next().item) for _ in range(3)] == [1, 2, 3]
    time.sleep(0.3)
    assert result_of(call(stub, "pulled", key=key)) == 4
    stream.grant(0)  # a no-op
    time.sleep(0.1)
    assert result_of(call(stub, "pulled", key=key)) == 4
    stream.cancel()
    assert stream.rest() == []


def test_a_slow_consumer_does_not_make_the_worker_grow(workers):
    stub = workers.start().stub()
    baseline = stub.Ping(pb.PingRequest(), timeout=5).rss_bytes
    stream = Stream(stub, "blobs", n=1000, size=1024 * 1024, credit=2)  # 1 GiB if it ran ahead
    assert len(decode(stream.next().item)) == 1024 * 1024
    time.sleep(0.5)  # the consumer stalls
    assert stub.Ping(pb.PingRequest(), timeout=5).rss_bytes < baseline + 64 * 1024 * 1024
    stream.cancel()
    stream.rest()


def test_an_initial_credit_of_zero_counts_as_one(workers):
    stub = workers.start(concurrency=2).stub()
    key = uuid.uuid4().hex
    stream = Stream(stub, "count_tracked", n=1000, key=key, credit=0)
    assert decode(stream.next().item) == 0
    time.sleep(0.2)
    assert result_of(call(stub, "pulled", key=key)) == 1
    stream.cancel()
    stream.rest()


@pytest.mark.parametrize("tool_name, how", [("tracked", {"closed"}), ("async_tracked", {"closed", "cancelled"})])
def test_cancel_closes_the_generator(workers, tool_name, how):
    stub = workers.start().stub()
    stream = Stream(stub, tool_name, n=1000, credit=1)
    for index in range(3):
        assert decode(stream.next().item) == index
        stream.grant(1)
    stream.cancel()
    rest = stream.rest()
    assert all(reply.WhichOneof("kind") == "item" for reply in rest)  # items already on the way; no end
    entry = closed_log(stub, stream.request_id)
    assert entry["how"] in how and entry["tool"] == tool_name
    assert 3 <= entry["yielded"] <= 4


@pytest.mark.parametrize("tool_name", ["tracked", "async_tracked"])
def test_cancelling_the_rpc_closes_the_generator(workers, tool_name):
    stub = workers.start().stub()
    stream = Stream(stub, tool_name, n=1000, credit=1)
    assert decode(stream.next().item) == 0
    stream.call.cancel()
    with pytest.raises(grpc.RpcError) as failure:
        stream.next()
    assert failure.value.code() == grpc.StatusCode.CANCELLED
    stream.half_close()
    assert closed_log(stub, stream.request_id)["how"] in ("closed", "cancelled")
    assert result_of(call(stub, "add", a=1, b=1)) == 2


def test_closing_the_request_side_with_no_credit_left_closes_the_generator(workers):
    stub = workers.start().stub()
    stream = Stream(stub, "tracked", n=1000, credit=2, delay_ms=0)
    stream.half_close()
    replies = list(stream.call)
    assert stream.call.code() == grpc.StatusCode.OK
    assert items_of(replies) == [0, 1]  # the credit granted is used, then nothing more can come
    assert closed_log(stub, stream.request_id)["how"] == "closed"


@pytest.mark.parametrize("tool_name, how", [("tracked", "closed"), ("async_tracked", "cancelled")])
def test_the_deadline_covers_the_whole_stream(workers, tool_name, how):
    stub = workers.start().stub()
    start = time.monotonic()
    stream = Stream(stub, tool_name, n=1000, delay_ms=50, credit=1000, timeout_ms=300)
    replies = stream.rest()
    assert time.monotonic() - start < 2
    assert 2 <= len(items_of(replies)) <= 8
    last = replies[-1]
    assert last.WhichOneof("kind") == "error" and last.error.kind == pb.TIMEOUT
    assert last.error.message == (f"tool '{tool_name}' did not finish streaming within its deadline "
                                  "(timeout_ms=300); the generator was closed")
    assert closed_log(stub, stream.request_id)["how"] == how


def test_the_deadline_passes_while_waiting_for_credit(workers):
    stub = workers.start().stub()
    stream = Stream(stub, "tracked", n=1000, credit=1, timeout_ms=300)
    replies = stream.rest()  # no grants
    assert [reply.WhichOneof("kind") for reply in replies] == ["item", "error"]
    assert replies[1].error.kind == pb.TIMEOUT
    assert closed_log(stub, stream.request_id)["how"] == "closed"


def test_each_item_is_held_to_the_payload_limit(workers):
    stub = workers.start(max_message_bytes=1024 * 1024).stub()
    replies = consume(Stream(stub, "blobs", n=3, size=900 * 1024, credit=3))
    assert [len(item) for item in items_of(replies)] == [900 * 1024] * 3 and replies[-1].end.items == 3
    [too_big] = consume(Stream(stub, "blobs", n=3, size=2 * 1024 * 1024))
    assert too_big.error.kind == pb.PAYLOAD_TOO_LARGE
    assert too_big.error.message.startswith("item 0 of tool 'blobs' is 2097")
    assert too_big.error.message.endswith("over the payload limit of 1048576 bytes (max_payload_bytes)")


def test_a_stream_holds_a_slot_of_the_workers_capacity(workers):
    stub = workers.start(concurrency=1).stub()
    stream = Stream(stub, "tracked", n=1000, credit=1)
    assert decode(stream.next().item) == 0
    queued = stub.Execute.future(pb.ExecuteRequest(tool="add", arguments=encode_map({"a": 1, "b": 2})), timeout=20)
    time.sleep(0.3)
    assert not queued.done()  # waits for the slot the open stream holds
    assert stub.Ping(pb.PingRequest(), timeout=5).in_flight == 2
    stream.cancel()
    stream.rest()
    assert result_of(queued.result()) == 3
    timed_out = stub.Execute(pb.ExecuteRequest(tool="noop", timeout_ms=100), timeout=20)
    assert timed_out.WhichOneof("outcome") == "result"


def test_a_stream_waits_for_a_slot_like_a_call(workers):
    stub = workers.start(concurrency=1).stub()
    first = Stream(stub, "tracked", n=1000, credit=1)
    assert decode(first.next().item) == 0
    second = Stream(stub, "count", n=2, credit=5, timeout_ms=200)
    [late] = second.rest()
    assert late.error.kind == pb.TIMEOUT
    assert late.error.message.startswith("tool 'count' did not start before its deadline (timeout_ms=200")
    third = Stream(stub, "count", n=2, credit=5)
    time.sleep(0.2)
    first.cancel()
    first.rest()
    assert items_of(third.rest()) == [0, 1]


def test_a_stream_open_at_stop_is_closed_and_the_worker_exits(workers):
    worker = workers.start()
    stub = worker.stub()
    stream = Stream(stub, "tracked", n=1000, credit=1)
    assert decode(stream.next().item) == 0
    start = time.monotonic()
    stub.Stop(pb.StopRequest(grace_ms=1000), timeout=5)
    refused = Stream(stub, "count", n=1)
    with pytest.raises(grpc.RpcError) as failure:
        refused.next()
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert failure.value.details() == "worker is stopping"
    refused.half_close()
    assert worker.wait() == 0
    assert time.monotonic() - start < 5
    stream.half_close()


def test_a_sync_generator_stuck_in_a_step_does_not_hold_up_the_timeout_reply(workers):
    stub = workers.start().stub()
    start = time.monotonic()
    stream = Stream(stub, "tracked", n=3, delay_ms=1500, credit=5, timeout_ms=300)
    replies = stream.rest()
    assert time.monotonic() - start < 1.2  # the reply and the RPC's end do not wait for the step
    assert replies[-1].error.kind == pb.TIMEOUT
    assert closed_log(stub, stream.request_id)["how"] == "closed"  # once the step returned


def test_the_call_context_reaches_a_streaming_tool(workers):
    stub = workers.start().stub()
    stream = Stream(stub, "tracked", n=2, delay_ms=0, correlation_id="corr-7")
    consume(stream)
    entry = closed_log(stub, stream.request_id)
    assert (entry["correlation_id"], entry["how"], entry["yielded"]) == ("corr-7", "finished", 2)


# --- in process: AdapterTestClient ------------------------------------------------------


class Streams(BaseAdapter):
    def __init__(self) -> None:
        self.closed: List[str] = []

    @tool
    def letters(self, word: str) -> Iterator[str]:
        """Each letter of ``word``."""
        yield from word

    @tool
    def squares(self, n: int) -> Generator[int, None, None]:
        for index in range(n):
            yield index * index

    @tool
    async def records(self, n: int) -> AsyncIterator[dict]:
        for index in range(n):
            await asyncio.sleep(0)
            yield {"index": index}

    @tool
    def untyped(self):
        yield {1, 2}  # no wire form

    @tool
    def threads(self, n: int) -> Iterator[str]:
        for _ in range(n):
            yield threading.current_thread().name

    @tool
    def with_events(self, n: int, ctx: CallContext) -> Iterator[int]:
        for index in range(n):
            ctx.emit("stream.step", {"i": index})
            yield index

    @tool
    def remember(self, n: int, ctx: CallContext) -> Iterator[int]:
        for index in range(n):
            ctx.session["last"] = index
            yield index

    @tool
    def recall(self, ctx: CallContext) -> Any:
        return ctx.session.get("last")

    @tool
    def guarded(self, n: int) -> Iterator[int]:
        try:
            yield from range(n)
        finally:
            self.closed.append(threading.current_thread().name)


def test_generator_tools_are_described_by_their_item_type():
    specs = {spec.name: spec for spec in Streams.describe()}
    assert (specs["letters"].returns, specs["letters"].streaming, specs["letters"].is_async) == ("str", True, False)
    assert specs["squares"].returns == "int"
    assert (specs["records"].returns, specs["records"].streaming, specs["records"].is_async) == ("dict", True, True)
    assert specs["untyped"].returns == "any"

    class Typed(BaseAdapter):
        @tool
        def bare(self) -> Iterable:
            yield 1

    assert Typed.describe()[0].returns == "any"

    class Wrong(BaseAdapter):
        @tool
        def numbers(self) -> int:
            yield 1

    with pytest.raises(TypeError, match=r"tool 'numbers' .*annotated with its items' type, e.g. '-> Iterator\[int\]'"):
        Wrong.describe()


def test_the_test_client_streams():
    with AdapterTestClient(Streams, concurrency=4) as client:
        assert list(client.stream("letters", word="abc")) == ["a", "b", "c"]
        squares = client.stream("squares", n=4, credit=2)
        assert list(squares) == [0, 1, 4, 9]
        assert (squares.ended, squares.items_sent) == (True, 4)
        assert squares.wall_ns > 0
        assert list(client.stream("records", n=2)) == [{"index": 0}, {"index": 1}]
        with pytest.raises(ToolCallError) as failure:
            list(client.stream("untyped"))
        assert failure.value.kind == "encode_failed"
        assert failure.value.message == ("item 0 of tool 'untyped' cannot be encoded: unsupported Python type 'set' "
                                         "at item")
        with pytest.raises(ToolCallError, match="streams items; call it with execute_stream"):
            client.call("letters", word="abc")
        with pytest.raises(ToolCallError, match="missing required argument 'word'"):
            list(client.stream("letters"))


def test_a_sync_generator_lives_in_one_pool_thread():
    with AdapterTestClient(Streams, concurrency=4) as client:
        names = list(client.stream("threads", n=20))
        assert len(set(names)) == 1 and names[0].startswith("snakepit-tool")


def test_the_test_client_cancels_and_closes_streams():
    adapter = Streams()
    with AdapterTestClient(adapter, concurrency=2) as client:
        stream = client.stream_with("guarded", {"n": 100}, credit=1, auto_credit=False)
        assert next(stream) == 0
        stream.cancel()
        assert list(stream) == [] and stream.cancelled and not stream.ended
        assert len(adapter.closed) == 1 and adapter.closed[0].startswith("snakepit-tool")
        with client.stream("guarded", n=100) as stream:
            assert next(stream) == 0
        assert len(adapter.closed) == 2
        left_open = client.stream("guarded", n=100)
        assert next(left_open) == 0
    assert len(adapter.closed) == 3  # leaving the client cancels the streams still open


def test_a_stream_belongs_to_its_session():
    with AdapterTestClient(Streams) as client:
        assert list(client.stream_with("remember", {"n": 3}, session_id="s1")) == [0, 1, 2]
        assert client.session("s1").call("recall") == 2
        assert client.session("s2").call("recall") is None


def test_stream_replies_carry_telemetry_events():
    with AdapterTestClient(Streams) as client:
        assert list(client.stream("with_events", n=3)) == [0, 1, 2]
        steps = [event for event in client.events() if event.name == "stream.step"]
        assert [event.measurements["i"] for event in steps] == [0, 1, 2]
        assert steps[0].metadata["tool"] == "with_events"


def test_the_showcase_streams_through_the_client():
    with AdapterTestClient(ShowcaseAdapter) as client:  # concurrency 1: a call waits for a stream's slot
        assert list(client.stream("count", n=3)) == [0, 1, 2]
        assert list(client.stream("async_count", n=3)) == [0, 1, 2]
        assert list(client.stream("blobs", n=2, size=3)) == [b"\x00\x00\x00", b"\x01\x01\x01"]
        stream = client.stream("fail_after", n=2)
        assert [next(stream), next(stream)] == [0, 1]
        with pytest.raises(ToolCallError) as failure:
            next(stream)
        assert (failure.value.python_type, failure.value.message) == ("ValueError", "failed after 2 items")
        with pytest.raises(ToolCallError) as timeout:
            list(client.stream_with("tracked", {"n": 100, "delay_ms": 30}, timeout_ms=200))
        assert timeout.value.kind == "timeout"
        log = client.call("stream_closed_log")
        assert log[-1]["how"] == "closed"
