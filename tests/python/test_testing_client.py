"""AdapterTestClient, and through it the dispatch every call takes: argument checks, errors,
context, timing, async tools, deadlines and the payload limit."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Optional

import pytest

from snakepit_bridge import AdapterTestClient, BaseAdapter, CallContext, ToolCallError, tool
from snakepit_bridge.showcase import ShowcaseAdapter


class Calculator(BaseAdapter):
    def __init__(self) -> None:
        self.events: list = []

    def setup(self) -> None:
        self.events.append("setup")

    def teardown(self) -> None:
        self.events.append("teardown")

    @tool
    def add(self, a: float, b: float) -> float:
        return a + b

    @tool
    def count(self, n: int, items: list[int] = [], weights: Optional[dict[str, float]] = None) -> int:
        return n + len(items) + len(weights or {})

    @tool
    def flag(self, on: bool) -> bool:
        return on

    @tool
    def anything(self, value, other: Any = None) -> Any:
        return [value, other]

    @tool
    def context(self, ctx: CallContext) -> dict:
        return {"request_id": bool(ctx.request_id), "tool": ctx.tool, "session": ctx.session_id,
                "correlation": ctx.correlation_id, "metadata": dict(ctx.metadata), "worker": ctx.worker_id,
                "time_left": ctx.time_left()}

    @tool
    def thread_name(self) -> str:
        return threading.current_thread().name

    @tool
    async def async_double(self, x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    @tool
    async def async_forever(self) -> None:
        await asyncio.sleep(3600)

    @tool
    def raise_custom(self) -> None:
        raise Oops("custom failure")

    @tool
    def exits(self) -> None:
        raise SystemExit(5)


class Oops(Exception):
    pass


@pytest.fixture
def client():
    with AdapterTestClient(Calculator) as c:
        yield c


def test_setup_and_teardown_run_around_the_block():
    adapter = Calculator()
    with AdapterTestClient(adapter) as c:
        assert adapter.events == ["setup"]
        assert c.call("add", a=1, b=2) == 3
    assert adapter.events == ["setup", "teardown"]


def test_results_keep_their_types(client):
    assert client.call("add", a=1, b=2) == 3 and isinstance(client.call("add", a=1, b=2), int)
    assert client.call("add", a=1.5, b=2) == 3.5
    assert client.call("add", a=2**62, b=2**62 - 1) == 2**63 - 1
    assert client.call("anything", value=(b"x", {"k": None})) == [[b"x", {"k": None}], None]
    assert client.call("async_double", x=21) == 42


class OrderWitness(BaseAdapter):
    @tool
    def keys_seen(self, value: dict) -> dict:
        return {"seen": [list(value), list(value["inner"])], "z": 1, "a": {"y": 1, "b": 2}}


def test_maps_come_sorted_by_key_both_ways_as_through_the_host():
    # The C++ host keeps maps as std::map (docs/python-adapters.md, "Maps and order"); the test
    # client gives the same order, so a test cannot pass on an order production never shows.
    with AdapterTestClient(OrderWitness) as client:
        result = client.call("keys_seen", value={"b": 1, "a": 2, "inner": {"é": 1, "e": 2}})
    assert result["seen"] == [["a", "b", "inner"], ["e", "é"]]
    assert list(result) == ["a", "seen", "z"] and list(result["a"]) == ["b", "y"]


@pytest.mark.parametrize("tool_name, arguments, message", [
    ("add", {"a": 1}, "missing required argument 'b' (float)"),
    ("add", {}, "missing required arguments 'a' (float), 'b' (float)"),
    ("add", {"a": 1, "b": 2, "z": 3}, "unexpected argument 'z'; tool 'add' takes: a, b"),
    ("thread_name", {"x": 1}, "unexpected argument 'x'; tool 'thread_name' takes no arguments"),
    ("context", {"ctx": 1}, "unexpected argument 'ctx'; tool 'context' takes no arguments"),
    ("add", {"a": "1", "b": 2}, "argument 'a' must be float, got str"),
    ("add", {"a": True, "b": 2}, "argument 'a' must be float, got bool"),
    ("count", {"n": 1.0}, "argument 'n' must be int, got float"),
    ("count", {"n": False}, "argument 'n' must be int, got bool"),
    ("count", {"n": 1, "items": [1, "2"]}, "argument 'items' must be list[int], got str at items[1]"),
    ("count", {"n": 1, "items": {}}, "argument 'items' must be list[int], got dict"),
    ("count", {"n": 1, "weights": {"a": 1, "b": "x"}},
     "argument 'weights' must be optional[dict[str, float]], got str at weights['b']"),
    ("flag", {"on": 1}, "argument 'on' must be bool, got int"),
    ("add", {"a": None, "b": 1}, "argument 'a' must be float, got None"),
])
def test_bad_arguments_name_the_parameter_and_the_expectation(client, tool_name, arguments, message):
    with pytest.raises(ToolCallError) as failure:
        client.call(tool_name, **arguments)
    assert (failure.value.kind, failure.value.message) == ("bad_arguments", message)


def test_good_arguments_pass_the_checks(client):
    assert client.call("count", n=1, items=[1, 2], weights={"a": 1, "b": 0.5}) == 5
    assert client.call("count", n=1, weights=None) == 1
    assert client.call("anything", value=[], other={}) == [[], {}]


def test_unknown_tool_lists_the_known_ones(client):
    with pytest.raises(ToolCallError) as failure:
        client.call("nope")
    assert failure.value.kind == "unknown_tool"
    assert failure.value.message == (
        "unknown tool 'nope'; known tools: add, anything, async_double, async_forever, context, count, exits, "
        "flag, raise_custom, thread_name")


def test_exceptions_carry_type_message_and_traceback(client):
    with pytest.raises(ToolCallError) as failure:
        client.call("raise_custom")
    error = failure.value
    assert (error.kind, error.message) == ("python_exception", "custom failure")
    assert error.python_type == "test_testing_client.Oops"
    assert error.traceback.startswith("Traceback (most recent call last)")
    assert "dispatch.py" not in error.traceback and 'raise Oops("custom failure")' in error.traceback
    with pytest.raises(ToolCallError) as exited:
        client.call("exits")
    assert (exited.value.python_type, exited.value.message) == ("SystemExit", "5")
    assert client.call("add", a=1, b=1) == 2  # still serving


def test_unencodable_arguments_and_results(client):
    with pytest.raises(ToolCallError) as failure:
        client.call("anything", value={1, 2})
    assert failure.value.kind == "encode_failed"
    assert failure.value.message == (
        "arguments of tool 'anything' cannot be encoded: unsupported Python type 'set' at arguments['value']")


def test_call_context_reaches_the_tool(client):
    seen = client.call_with("context", {}, timeout_ms=5000, session_id="s-1", correlation_id="c-1",
                            metadata={"user": "ada"})
    assert seen["request_id"] and seen["tool"] == "context"
    assert (seen["session"], seen["correlation"], seen["metadata"], seen["worker"]) == ("s-1", "c-1", {"user": "ada"}, "test")
    assert 0 < seen["time_left"] <= 5
    assert client.call("context")["time_left"] is None


def test_sync_tools_run_in_the_pool_and_are_timed(client):
    assert client.call("thread_name").startswith("snakepit-tool")
    with AdapterTestClient(ShowcaseAdapter) as showcase:
        showcase.call("cpu_burn", milliseconds=50)
        assert showcase.last_wall_ns >= 50_000_000
        assert 0 < showcase.last_cpu_ns <= showcase.last_wall_ns + 1_000_000  # its share of a core varies with load
        showcase.call("sleep", seconds=0.05)
        assert showcase.last_wall_ns >= 50_000_000 and showcase.last_cpu_ns < 25_000_000
        showcase.call("async_sleep", seconds=0.05)  # other work on the loop is not counted
        assert showcase.last_wall_ns >= 50_000_000 and showcase.last_cpu_ns < 25_000_000


def test_async_tools_are_cancelled_at_their_deadline(client):
    start = time.monotonic()
    with pytest.raises(ToolCallError) as failure:
        client.call_with("async_forever", {}, timeout_ms=100)
    assert failure.value.kind == "timeout"
    assert "did not finish within its deadline (timeout_ms=100)" in failure.value.message
    assert time.monotonic() - start < 5


def test_payload_limit_applies_to_results_and_arguments():
    with AdapterTestClient(ShowcaseAdapter, max_message_bytes=1000) as showcase:
        assert len(showcase.call("make_bytes", size=990)) == 990
        with pytest.raises(ToolCallError) as failure:
            showcase.call("make_bytes", size=2000)
        assert (failure.value.kind, failure.value.message) == (
            "payload_too_large",
            "result of tool 'make_bytes' is 2003 bytes, over the payload limit of 1000 bytes (max_payload_bytes)")
        with pytest.raises(ToolCallError, match=r"arguments of tool 'bytes_length' are 20\d\d bytes, over the payload"):
            showcase.call("bytes_length", data=bytes(2000))


def test_the_client_must_be_entered():
    with pytest.raises(RuntimeError, match="context manager"):
        AdapterTestClient(Calculator).call("add", a=1, b=2)


def test_the_showcase_through_the_client():
    with AdapterTestClient(ShowcaseAdapter) as showcase:
        assert showcase.call("echo", value={"deep": [1, 2.5, "x", b"y", None]}) == {"deep": [1, 2.5, "x", b"y", None]}
        assert showcase.call("noop") is None
        assert showcase.call("bytes_length", data=b"12345") == 5
        with pytest.raises(ToolCallError) as failure:
            showcase.call("fail", message="bad input", exception="TypeError")
        assert (failure.value.python_type, failure.value.message) == ("TypeError", "bad input")
        info = showcase.call("worker_info")
        assert info["worker_id"] == "test" and info["setup_unix_s"] > 0
        names = [spec.name for spec in showcase.tools()]
        assert names == sorted(names) and "worker_info" in names
