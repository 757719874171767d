"""Telemetry events: checks at emit, the bounded buffer and its drop count, batches, threads, and
events on real Execute and Ping replies of a worker process."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from typing import Any, Iterator

import pytest

from bridge_helpers import PYTHON, PYTHON_DIR, SHOWCASE, THREADED_SHOWCASE, call, result_of
from snakepit_bridge import AdapterTestClient, BaseAdapter, CallContext, ToolCallError, telemetry, tool
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.showcase import ShowcaseAdapter


@pytest.fixture(autouse=True)
def fresh_buffer() -> Iterator[None]:
    """The buffer is process-wide: each test starts and ends with an empty default one."""
    telemetry.configure(telemetry.DEFAULT_EVENT_BUFFER)
    yield
    telemetry.configure(telemetry.DEFAULT_EVENT_BUFFER)


def _names(events: Any) -> list:
    return [event.name for event in events]


# --- checks at emit -------------------------------------------------------------------------------

MANY = {f"k{index}": 1 for index in range(33)}


@pytest.mark.parametrize("name, measurements, metadata, error, message", [
    (3, None, None, TypeError, "event name must be a str, got int"),
    ("", None, None, ValueError, "event name must not be empty"),
    ("a" * 129, None, None, ValueError, "event name is 129 characters, over the limit of 128"),
    ("cache miss", None, None, ValueError, "event name 'cache miss' contains ' ': use only letters, digits"),
    ("python/é", None, None, ValueError, "contains '/', 'é'"),
    ("ok", [("a", 1)], None, TypeError, "measurements must be a mapping (a dict) or None, got list"),
    ("ok", MANY, None, ValueError, "measurements has 33 entries; at most 32 are allowed"),
    ("ok", {1: 1.0}, None, TypeError, "measurements keys must be str, got int"),
    ("ok", {"": 1.0}, None, ValueError, "measurements keys must not be empty"),
    ("ok", {"k" * 129: 1.0}, None, ValueError, "is 129 characters, over the limit of 128"),
    ("ok", {"flag": True}, None, TypeError, "measurement 'flag' must be an int or float, got bool"),
    ("ok", {"n": "3"}, None, TypeError, "measurement 'n' must be an int or float, got str"),
    ("ok", {"n": None}, None, TypeError, "measurement 'n' must be an int or float, got NoneType"),
    ("ok", {"n": float("nan")}, None, ValueError, "measurement 'n' must be finite, got nan"),
    ("ok", {"n": float("-inf")}, None, ValueError, "measurement 'n' must be finite, got -inf"),
    ("ok", {"n": 10**400}, None, ValueError, "measurement 'n' is too large for a double (an int of 1329 bits)"),
    ("ok", {"n": 2**100_000}, None, ValueError, "measurement 'n' is too large for a double (an int of 100001 bits)"),
    ("ok", None, "a=b", TypeError, "metadata must be a mapping (a dict) or None, got str"),
    ("ok", None, {k: "v" for k in MANY}, ValueError, "metadata has 33 entries; at most 32 are allowed"),
    ("ok", None, {"n": 3}, TypeError, "metadata 'n' must be a str, got int: convert it with str()"),
    ("ok", None, {"s": "x" * 1025}, ValueError, "metadata 's' is 1025 characters, over the limit of 1024"),
    ("ok", None, {"s": "\udc80"}, ValueError, "metadata 's' '\\udc80' is not valid Unicode text"),
    ("ok", None, {f"k{i}": "€" * 1024 for i in range(32)}, ValueError, "over the limit of 49152"),
])
def test_invalid_events_raise_at_the_call_site_and_queue_nothing(name, measurements, metadata, error, message):
    with pytest.raises(error) as raised:
        telemetry.emit(name, measurements, metadata)
    assert message in str(raised.value)
    telemetry.configure(0)
    with pytest.raises(error):  # a caller's bug shows whether events are on or not
        telemetry.emit(name, measurements, metadata)
    assert telemetry.pending() == 0 and telemetry.dropped_total() == 0


def test_the_largest_allowed_events_are_accepted_as_doubles():
    measurements = {f"m{index:0>126}": index for index in range(32)}
    metadata = {f"d{index:0>126}": "x" * 1024 for index in range(32)}
    assert telemetry.emit("a" * 128, measurements, metadata)
    assert telemetry.emit("Az09_.:-", {"int": 2**62, "float": -0.5}, {})
    big, small = telemetry.snapshot()
    assert big.measurements == {key: float(value) for key, value in measurements.items()}
    assert all(type(value) is float for value in big.measurements.values())
    assert big.metadata == metadata and small.metadata == {}
    assert small.measurements == {"int": float(2**62), "float": -0.5}
    assert abs(small.unix_ns - time.time_ns()) < 60 * 10**9
    batch = telemetry.drain()
    assert batch.ByteSize() <= telemetry.MAX_BATCH_BYTES
    assert len(batch.events) == 2 and dict(batch.events[0].measurements) == big.measurements


def test_emit_is_exported_by_the_package():
    import snakepit_bridge

    assert snakepit_bridge.emit is telemetry.emit
    assert "emit" in snakepit_bridge.__all__


def test_the_caller_cannot_change_a_queued_event():
    metadata = {"k": "v"}
    telemetry.emit("e", None, metadata)
    metadata["k"] = "changed"
    assert telemetry.snapshot()[0].metadata == {"k": "v"}


# --- the buffer -----------------------------------------------------------------------------------

def test_a_full_buffer_drops_new_events_and_counts_them():
    telemetry.configure(3)
    assert [telemetry.emit(f"e{index}") for index in range(5)] == [True, True, True, False, False]
    assert telemetry.pending() == 3 and telemetry.dropped_total() == 2
    assert _names(telemetry.snapshot()) == ["e0", "e1", "e2"]  # the oldest are kept
    batch = telemetry.drain()
    assert _names(batch.events) == ["e0", "e1", "e2"] and batch.dropped_total == 2
    assert telemetry.emit("e5")  # room again; the count stays
    assert telemetry.drain().dropped_total == 2


def test_capacity_zero_disables_events_without_counting_drops():
    telemetry.configure(0)
    assert telemetry.capacity() == 0
    assert telemetry.emit("e", {"n": 1}) is False
    assert telemetry.pending() == 0 and telemetry.dropped_total() == 0
    reply = pb.ExecuteResponse()
    telemetry.attach(reply)
    assert not reply.HasField("telemetry")


def test_configure_restarts_the_buffer_and_checks_its_argument():
    telemetry.configure(1)
    telemetry.emit("a")
    telemetry.emit("b")
    telemetry.configure(5)
    assert (telemetry.capacity(), telemetry.pending(), telemetry.dropped_total()) == (5, 0, 0)
    with pytest.raises(ValueError, match="0 \\(disabled\\) or more, not -1"):
        telemetry.configure(-1)
    for wrong in ("5", 5.0, True):
        with pytest.raises(TypeError, match="event buffer capacity must be an int"):
            telemetry.configure(wrong)  # type: ignore[arg-type]
    assert telemetry.capacity() == 5


def test_drain_takes_the_oldest_first_at_most_a_batch_at_a_time():
    total = 2 * telemetry.MAX_EVENTS_PER_BATCH + 88
    for index in range(total):
        telemetry.emit("tick", {"i": index})
    seen = []
    sizes = []
    while telemetry.pending():
        batch = telemetry.drain()
        sizes.append(len(batch.events))
        seen += [int(event.measurements["i"]) for event in batch.events]
    assert sizes == [telemetry.MAX_EVENTS_PER_BATCH, telemetry.MAX_EVENTS_PER_BATCH, 88]
    assert seen == list(range(total))
    assert len(telemetry.drain().events) == 0
    for index in range(5):
        telemetry.emit("tick", {"i": index})
    given = pb.TelemetryBatch()
    assert telemetry.drain(given, max_events=2) is given
    assert [event.measurements["i"] for event in given.events] == [0, 1]


def test_a_batch_stays_within_its_byte_budget():
    metadata = {f"k{index}": "x" * 1000 for index in range(20)}  # about 20 KB an event
    for _ in range(5):
        telemetry.emit("big", None, metadata)
    sizes = []
    while telemetry.pending():
        batch = telemetry.drain()
        assert batch.ByteSize() <= telemetry.MAX_BATCH_BYTES
        sizes.append(len(batch.events))
    assert sizes == [2, 2, 1]


def test_attach_fills_a_reply_only_when_there_is_something_to_report():
    reply = pb.PingResponse()
    telemetry.attach(reply)
    assert not reply.HasField("telemetry")
    telemetry.emit("e")
    telemetry.attach(reply)
    assert _names(reply.telemetry.events) == ["e"] and reply.telemetry.dropped_total == 0
    later = pb.ExecuteResponse()
    telemetry.attach(later)
    assert not later.HasField("telemetry")
    telemetry.configure(1)
    telemetry.emit("kept")
    telemetry.emit("dropped")
    for _ in range(2):  # once events were dropped, every reply says how many
        reply = pb.ExecuteResponse()
        telemetry.attach(reply)
        assert reply.HasField("telemetry") and reply.telemetry.dropped_total == 1
    assert _names(reply.telemetry.events) == []


@pytest.mark.parametrize("capacity", [100_000, 500])
def test_threads_emit_at_once_without_losing_or_reordering(capacity):
    telemetry.configure(capacity)
    threads, per_thread = 8, 2000
    accepted = [0] * threads
    start = threading.Barrier(threads)

    def run(number: int) -> None:
        start.wait()
        for index in range(per_thread):
            accepted[number] += telemetry.emit("t", {"i": index}, {"thread": str(number)})

    workers = [threading.Thread(target=run, args=(number,)) for number in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    events = telemetry.snapshot()
    assert len(events) == sum(accepted) == min(capacity, threads * per_thread)
    assert sum(accepted) + telemetry.dropped_total() == threads * per_thread
    for number in range(threads):
        mine = [event.measurements["i"] for event in events if event.metadata["thread"] == str(number)]
        assert mine == sorted(mine) and len(mine) == accepted[number]


# --- CallContext.emit and AdapterTestClient --------------------------------------------------------

def test_ctx_emit_adds_tool_and_request_id_without_overriding_the_callers():
    ctx = CallContext(request_id="r-1", tool="score")
    assert ctx.emit("scored", {"ms": 3}, {"model": "m"})
    assert ctx.emit("scored", None, {"tool": "mine"})
    first, second = telemetry.snapshot()
    assert first.metadata == {"tool": "score", "request_id": "r-1", "model": "m"}
    assert second.metadata == {"tool": "mine", "request_id": "r-1"}
    thirty_two = {f"k{index}": "v" for index in range(32)}
    counted = r"metadata has 34 entries, counting the default ones \('tool', 'request_id'\)"
    with pytest.raises(ValueError, match=counted):
        ctx.emit("full", None, thirty_two)
    assert ctx.emit("full", None, {f"k{index}": "v" for index in range(30)})
    with pytest.raises(TypeError, match="metadata must be a mapping"):
        ctx.emit("bad", None, ["tool"])  # type: ignore[arg-type]


class Emitter(BaseAdapter):
    def setup(self) -> None:
        telemetry.emit("emitter.setup")

    @tool
    def work(self, n: int, ctx: CallContext) -> int:
        for index in range(n):
            ctx.emit("emitter.step", {"index": index}, {"phase": "work"})
        return n

    @tool
    def from_thread(self) -> None:
        thread = threading.Thread(target=telemetry.emit, args=("emitter.thread",))
        thread.start()
        thread.join()

    @tool
    def bad_name(self) -> None:
        telemetry.emit("no spaces")


def test_the_test_client_shows_the_events_replies_carried_in_order():
    telemetry.emit("left.over")  # from before the client: entering empties the buffer
    with AdapterTestClient(Emitter) as client:
        # setup()'s event, with no call yet: a worker sends it on the next health ping
        assert _names(client.events()) == ["emitter.setup"]
        assert client.call("work", n=2) == 2
        events = client.events()
        assert _names(events) == ["emitter.setup", "emitter.step", "emitter.step"]
        request_id = events[1].metadata["request_id"]
        assert events[1].metadata == {"tool": "work", "request_id": request_id, "phase": "work"}
        assert [event.measurements for event in events[1:]] == [{"index": 0.0}, {"index": 1.0}]
        assert events[2].metadata["request_id"] == request_id
        client.call("from_thread")
        assert _names(client.events())[-1] == "emitter.thread"
        with pytest.raises(ToolCallError) as raised:
            client.call("bad_name")
        assert (raised.value.kind, raised.value.python_type) == ("python_exception", "ValueError")
        assert "event name 'no spaces' contains ' '" in raised.value.message
        assert client.events_dropped() == 0


def test_the_test_client_reports_drops_and_honours_its_event_buffer():
    with AdapterTestClient(ShowcaseAdapter, event_buffer=5) as client:
        assert client.call("emit_events", count=8) == 5
        assert len(client.events()) == 5 and client.events_dropped() == 3
        assert {event.metadata["source"] for event in client.events()} == {"showcase"}
    with AdapterTestClient(ShowcaseAdapter, event_buffer=0) as client:
        assert client.call("emit_events", count=8) == 0
        assert client.events() == [] and client.events_dropped() == 0


# --- a real worker over gRPC -----------------------------------------------------------------------

def test_events_ride_on_execute_replies(workers):
    stub = workers.start().stub()
    response = call(stub, "emit_events", count=3, name="showcase.test")
    assert result_of(response) == 3
    batch = response.telemetry
    assert [(event.name, dict(event.measurements)) for event in batch.events] == [
        ("showcase.test", {"i": float(index)}) for index in range(3)]
    assert dict(batch.events[0].metadata) == {"source": "showcase", "tool": "emit_events", "request_id": "t"}
    assert batch.dropped_total == 0
    assert abs(batch.events[0].unix_ns - time.time_ns()) < 60 * 10**9
    assert not call(stub, "noop").HasField("telemetry")  # nothing new: the field stays unset
    assert not stub.Ping(pb.PingRequest(), timeout=10).HasField("telemetry")


def test_what_one_reply_cannot_carry_comes_with_the_next_reply_or_ping(workers):
    stub = workers.start(THREADED_SHOWCASE, concurrency=2, extra_args=("--profile", "thread")).stub()
    count = telemetry.MAX_EVENTS_PER_BATCH + 44
    response = call(stub, "emit_events", count=count)
    assert result_of(response) == count
    assert len(response.telemetry.events) == telemetry.MAX_EVENTS_PER_BATCH
    ping = stub.Ping(pb.PingRequest(), timeout=10)
    assert [event.measurements["i"] for event in ping.telemetry.events] == [
        float(index) for index in range(telemetry.MAX_EVENTS_PER_BATCH, count)]
    assert not stub.Ping(pb.PingRequest(), timeout=10).HasField("telemetry")


def test_a_full_worker_buffer_counts_drops_on_every_reply(workers):
    stub = workers.start(extra_args=("--event-buffer", "4")).stub()
    response = call(stub, "emit_events", count=10)
    assert result_of(response) == 4
    assert len(response.telemetry.events) == 4 and response.telemetry.dropped_total == 6
    ping = stub.Ping(pb.PingRequest(), timeout=10)
    assert len(ping.telemetry.events) == 0 and ping.telemetry.dropped_total == 6
    assert call(stub, "noop").telemetry.dropped_total == 6


def test_event_buffer_zero_disables_events(workers):
    stub = workers.start(extra_args=("--event-buffer", "0")).stub()
    response = call(stub, "emit_events", count=10)
    assert result_of(response) == 0
    assert not response.HasField("telemetry")
    assert not stub.Ping(pb.PingRequest(), timeout=10).HasField("telemetry")


SETUP_EMITTER = """
from snakepit_bridge import BaseAdapter, emit, tool


class SetupEmitter(BaseAdapter):
    def setup(self):
        emit("adapter.loaded", {"models": 2}, {"path": "/srv/models"})

    @tool
    def noop(self) -> None:
        pass
"""


def test_events_from_outside_a_call_ride_on_the_next_ping(workers, tmp_path):
    (tmp_path / "setup_emitter.py").write_text(SETUP_EMITTER)
    stub = workers.start("setup_emitter.SetupEmitter", python_path=(tmp_path,)).stub()
    ping = stub.Ping(pb.PingRequest(), timeout=10)
    assert [(event.name, dict(event.measurements), dict(event.metadata)) for event in ping.telemetry.events] == [
        ("adapter.loaded", {"models": 2.0}, {"path": "/srv/models"})]
    assert not call(stub, "noop").HasField("telemetry")


def test_a_negative_event_buffer_is_a_bad_command_line():
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    done = subprocess.run([PYTHON, "-m", "snakepit_bridge.worker", "--adapter", SHOWCASE, "--socket", "/tmp/x.sock",
                           "--event-buffer", "-1"], env=env, capture_output=True, timeout=30)
    assert done.returncode == 2
    assert b"--event-buffer must be 0 (disabled) or more" in done.stderr
