"""Host tools: Python tools listing and calling the host's tools (service ``Host``), through real
worker processes started with ``--host-socket`` and through ``AdapterTestClient(host_tools=...)``,
both against the fake host of ``snakepit_bridge.testing.HostToolServer``."""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest

from bridge_helpers import PYTHON, PYTHON_DIR, SHOWCASE, THREADED_SHOWCASE, call, result_of, shm_files
from snakepit_bridge import AdapterTestClient, BaseAdapter, CallContext, HostToolError, ToolCallError, tool
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.host import NO_HOST_MESSAGE, HostClient, HostToolSpec
from snakepit_bridge.showcase import ShowcaseAdapter
from snakepit_bridge.testing import HostToolServer
from snakepit_bridge.values import encode_map

SLOW_S = 3.0


def add(a: int, b: int = 10) -> int:
    """Adds two ints.

    Args:
        a: the first.
        b: the second.
    """
    return a + b


def refuse(reason: str) -> None:
    raise ValueError(f"host says no: {reason}")


def strict(n: int) -> int:
    if n < 0:
        raise TypeError("n must not be negative")
    return n


def slow() -> str:
    time.sleep(SLOW_S)
    return "late"


def host_timeout() -> None:
    raise HostToolError("timeout", "the pool had no capacity before the deadline")


HOST_TOOLS = {"add": add, "refuse": refuse, "strict": strict, "slow": slow, "host_timeout": host_timeout,
              "echo": lambda value: value}


@pytest.fixture
def host() -> Iterator[HostToolServer]:
    with HostToolServer(HOST_TOOLS) as server:
        yield server


def execute(stub, tool_name: str, timeout_ms: int = 0, session_id: str = "", **arguments: Any) -> pb.ExecuteResponse:
    request = pb.ExecuteRequest(request_id="r-1", tool=tool_name, arguments=encode_map(arguments),
                                timeout_ms=timeout_ms, session_id=session_id)
    return stub.Execute(request, timeout=20)


# --- through a real worker process -----------------------------------------------------------


def test_a_worker_lists_and_calls_the_host_tools(workers, host):
    stub = workers.start(extra_args=("--host-socket", host.socket_path)).stub()
    assert result_of(call(stub, "host_tool_names")) == sorted(HOST_TOOLS)
    assert result_of(execute(stub, "host_call", session_id="s-1", name="add", args={"a": 1, "b": 2})) == 3
    assert result_of(call(stub, "host_call", name="echo", args={"value": {"k": [1, 2.5, b"x", None]}})) == \
        {"k": [1, 2.5, b"x", None]}
    first = host.calls()[0]
    assert (first.tool, first.arguments, first.worker_id, first.request_id, first.session_id, first.timeout_ms) == \
        ("add", {"a": 1, "b": 2}, "pool-1", "r-1", "s-1", 0)


def test_a_host_error_reaches_the_caller_as_a_python_exception_with_the_hosts_message(workers, host):
    stub = workers.start(extra_args=("--host-socket", host.socket_path)).stub()
    error = call(stub, "host_call", name="refuse", args={"reason": "quota"}).error
    assert (error.kind, error.python_type) == (pb.PYTHON_EXCEPTION, "HostToolError")
    assert error.message == "[internal] host says no: quota"


@pytest.mark.parametrize("name, args, kind, message", [
    ("nope", {}, "unknown_tool", "unknown host tool 'nope'; known host tools: add, echo, host_timeout"),
    ("add", {}, "bad_arguments", "host tool 'add': missing required argument 'a' (int)"),
    ("add", {"a": "one"}, "bad_arguments", "argument 'a' must be int, got str"),
    ("strict", {"n": -1}, "bad_arguments", "n must not be negative"),
    ("host_timeout", {}, "timeout", "the pool had no capacity before the deadline"),
])
def test_each_failure_has_the_hosts_kind_and_message(workers, host, name, args, kind, message):
    stub = workers.start(extra_args=("--host-socket", host.socket_path)).stub()
    outcome = result_of(call(stub, "host_call_or_error", name=name, args=args))
    assert outcome["error_kind"] == kind
    assert message in outcome["error"]


def test_a_host_call_is_bounded_by_the_calling_tools_deadline(workers, host):
    stub = workers.start(extra_args=("--host-socket", host.socket_path)).stub()
    start = time.monotonic()
    outcome = result_of(execute(stub, "host_call_or_error", timeout_ms=400, name="slow", args={}))
    elapsed = time.monotonic() - start
    assert outcome["error_kind"] == "timeout", outcome
    assert elapsed < 2.0, elapsed
    (sent,) = host.calls()
    assert 0 < sent.timeout_ms <= 400


def test_the_thread_profile_calls_the_host_from_several_tools_at_once(workers):
    calls = 4
    together = threading.Barrier(calls, timeout=10)

    def meet(index: int) -> int:
        together.wait()  # returns only when every call is in the host at the same time
        return index

    with HostToolServer({"meet": meet}) as host:
        stub = workers.start(THREADED_SHOWCASE, concurrency=calls,
                             extra_args=("--profile", "thread", "--host-socket", host.socket_path)).stub()
        results: List[Any] = [None] * calls

        def one(index: int) -> None:
            results[index] = result_of(call(stub, "host_call", name="meet", args={"index": index}))

        threads = [threading.Thread(target=one, args=(index,)) for index in range(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert results == list(range(calls))


def test_an_async_tool_calls_the_host_without_blocking_the_worker(workers):
    entered = threading.Event()
    release = threading.Event()

    def hold() -> str:
        entered.set()
        release.wait(10)
        return "released"

    with HostToolServer({"hold": hold}) as host:
        stub = workers.start(concurrency=2, extra_args=("--host-socket", host.socket_path)).stub()
        future = stub.Execute.future(pb.ExecuteRequest(request_id="a", tool="async_host_call",
                                                       arguments=encode_map({"name": "hold", "args": {}})), timeout=20)
        assert entered.wait(10)
        assert stub.Ping(pb.PingRequest(), timeout=5).in_flight == 1  # the event loop still answers
        assert result_of(call(stub, "echo", value=7)) == 7
        release.set()
        assert result_of(future.result()) == "released"


def test_without_a_host_socket_calling_the_host_is_a_clear_error(workers):
    stub = workers.start().stub()
    for tool_name, arguments in (("host_call", {"name": "add", "args": {}}), ("host_tool_names", {})):
        error = call(stub, tool_name, **arguments).error
        assert (error.kind, error.python_type, error.message) == (pb.PYTHON_EXCEPTION, "RuntimeError", NO_HOST_MESSAGE)


def test_a_host_that_is_gone_is_an_unavailable_error(workers):
    server = HostToolServer({"add": add}).start()
    stub = workers.start(extra_args=("--host-socket", server.socket_path)).stub()
    assert result_of(call(stub, "host_call", name="add", args={"a": 1})) == 11
    server.stop()
    outcome = result_of(call(stub, "host_call_or_error", name="add", args={"a": 1}))
    assert outcome["error_kind"] == "unavailable"
    assert "cannot reach the host" in outcome["error"]


def test_a_host_socket_path_over_the_limit_is_refused_at_the_command_line():
    process = subprocess.run([PYTHON, "-m", "snakepit_bridge.worker", "--adapter", SHOWCASE, "--socket", "/tmp/x.sock",
                              "--host-socket", "/tmp/" + "h" * 200], env={"PYTHONPATH": str(PYTHON_DIR)},
                             capture_output=True, text=True, timeout=30)
    assert process.returncode == 2
    assert "--host-socket is longer than 107 bytes" in process.stderr


# --- through AdapterTestClient(host_tools=...) --------------------------------------------------


class Caller(BaseAdapter):
    """Tools that call the host in every way a tool can."""

    @tool
    def specs(self, ctx: CallContext) -> List[Dict[str, Any]]:
        return [{"name": s.name, "description": s.description, "returns": s.returns,
                 "parameters": [(p.name, p.type, p.required, p.default, p.description) for p in s.parameters]}
                for s in ctx.host_tools()]

    @tool
    def total(self, numbers: List[int], ctx: CallContext) -> int:
        result = 0
        for number in numbers:
            result = ctx.call_host("add", a=result, b=number)
        return result

    @tool
    async def async_total(self, numbers: List[int], ctx: CallContext) -> int:
        result = 0
        for number in numbers:
            result = await ctx.acall_host("add", a=result, b=number)
        return result

    @tool
    async def async_names(self, ctx: CallContext) -> List[str]:
        return [spec.name for spec in await ctx.ahost_tools()]

    @tool
    async def async_wait(self, ctx: CallContext) -> str:
        return await ctx.acall_host("slow")

    @tool
    def running_total(self, numbers: List[int], ctx: CallContext) -> Iterator[int]:
        result = 0
        for number in numbers:
            result = ctx.call_host("add", a=result, b=number)
            yield result

    @tool
    def with_timeout(self, name: str, timeout_s: float, ctx: CallContext) -> Dict[str, Any]:
        try:
            return {"ok": ctx.call_host_with(name, {}, timeout_s=timeout_s)}
        except HostToolError as exc:
            return {"kind": exc.kind, "message": exc.message, "tool": exc.tool}

    @tool
    def send(self, size: int, ctx: CallContext) -> Any:
        return ctx.call_host("echo", value=b"x" * size)

    @tool
    def send_set(self, ctx: CallContext) -> Any:
        return ctx.call_host("echo", value={1, 2})


def test_the_host_tools_are_described_by_their_signatures():
    with AdapterTestClient(Caller, host_tools={"add": add}) as client:
        assert client.call("specs") == [{
            "name": "add", "description": "Adds two ints.", "returns": "int",
            "parameters": [["a", "int", True, None, "the first."], ["b", "int", False, 10, "the second."]],
        }]


def test_sync_async_and_streaming_tools_call_the_host():
    with AdapterTestClient(Caller, host_tools={"add": add}) as client:
        assert client.call("total", numbers=[1, 2, 3]) == 6
        assert client.call("async_total", numbers=[1, 2, 3]) == 6
        assert client.call("async_names") == ["add"]
        assert list(client.stream("running_total", numbers=[1, 2, 3])) == [1, 3, 6]
        assert client.session("s-9").call("total", numbers=[5]) == 5
        assert {call.session_id for call in client.host_calls()} == {"", "s-9"}
        assert {call.worker_id for call in client.host_calls()} == {"test"}


def test_an_async_tool_at_its_deadline_is_cancelled_while_the_host_is_called():
    with AdapterTestClient(Caller, host_tools={"slow": slow}) as client:
        start = time.monotonic()
        with pytest.raises(ToolCallError) as caught:
            client.call_with("async_wait", {}, timeout_ms=300)
        # The tool is cancelled at its deadline, or its host call times out at the same instant first.
        error = caught.value
        assert error.kind == "timeout" or (error.python_type, error.message[:9]) == ("HostToolError", "[timeout]"), error
        assert time.monotonic() - start < 2.0


def test_timeout_s_shortens_the_call_and_the_deadline_caps_it():
    with AdapterTestClient(Caller, host_tools={"slow": slow}) as client:
        start = time.monotonic()
        outcome = client.call("with_timeout", name="slow", timeout_s=0.2)
        assert (outcome["kind"], outcome["tool"]) == ("timeout", "slow")
        # The caller's own 200 ms, or the host tool server's timeout_ms=200 it was sent with,
        # whichever fires first on a busy machine: both say the call timed out at 200 ms.
        assert ("no answer within 200 ms" in outcome["message"]
                or "within timeout_ms=200" in outcome["message"]), outcome["message"]
        outcome = client.call_with("with_timeout", {"name": "slow", "timeout_s": 60.0}, timeout_ms=300)
        assert outcome["kind"] == "timeout"
        assert time.monotonic() - start < 2.0
        # The host records a call when its handler starts, which on a loaded machine may be
        # after the caller has already given up on it.
        until = time.monotonic() + 10
        while len(client.host_calls()) < 2 and time.monotonic() < until:
            time.sleep(0.01)
        assert [call.timeout_ms for call in client.host_calls()][0] == 200
        assert 0 < client.host_calls()[1].timeout_ms <= 300


def test_arguments_that_cannot_be_sent_fail_before_the_host_is_called():
    with AdapterTestClient(Caller, host_tools={"echo": lambda value: value}, max_message_bytes=4096) as client:
        assert client.call("send", size=10) == b"x" * 10
        with pytest.raises(ToolCallError) as caught:
            client.call("send", size=10000)
        assert caught.value.message.startswith("[payload_too_large] arguments of host tool 'echo' are ")
        with pytest.raises(ToolCallError) as caught:
            client.call("send_set")
        assert caught.value.message == ("[encode_failed] arguments of host tool 'echo' cannot be encoded: "
                                        "unsupported Python type 'set' at arguments['value']")
        assert len(client.host_calls()) == 1


def test_without_host_tools_the_test_client_has_no_host():
    with AdapterTestClient(Caller) as client:
        with pytest.raises(ToolCallError) as caught:
            client.call("total", numbers=[1])
        assert (caught.value.python_type, caught.value.message) == ("RuntimeError", NO_HOST_MESSAGE)
        assert client.host_calls() == []


def test_a_fake_host_tool_must_be_a_plain_function():
    async def coroutine() -> None:
        pass

    with pytest.raises(TypeError, match="host tools are called synchronously"):
        AdapterTestClient(ShowcaseAdapter, host_tools={"c": coroutine})


# --- HostClient and CallContext on their own ------------------------------------------------------


def test_the_tool_list_is_asked_once_and_cached(host, monkeypatch):
    client = HostClient(host.socket_path, max_message_bytes=1 << 20, worker_id="w")
    asked: List[str] = []
    real = host.list_tools
    monkeypatch.setattr(host, "list_tools", lambda: asked.append("x") or real())
    try:
        first = client.list_tools()
        assert client.list_tools() == first
        assert all(isinstance(spec, HostToolSpec) for spec in first)
        assert [spec.name for spec in first] == sorted(HOST_TOOLS)
        assert asked == ["x"]
        assert client.call("add", a=2) == 12
    finally:
        client.close()


def test_a_context_past_its_deadline_does_not_call_the_host(host):
    client = HostClient(host.socket_path, max_message_bytes=1 << 20)
    try:
        ctx = CallContext(tool="t", deadline=time.monotonic() - 1, _host=client)
        with pytest.raises(HostToolError) as caught:
            ctx.call_host("add", a=1)
        assert caught.value.kind == "timeout"
        assert str(caught.value) == ("[timeout] no time left to call host tool 'add': the calling tool's deadline "
                                     "has passed")
        with pytest.raises(ValueError):
            CallContext(_host=client).call_host_with("add", {"a": 1}, timeout_s=0)
        assert host.calls() == []
        assert CallContext(_host=client).has_host_tools and not CallContext().has_host_tools
    finally:
        client.close()


def test_a_host_that_does_not_serve_host_tools_is_unavailable(workers):
    worker = workers.start()  # a worker serves Worker, not Host: UNIMPLEMENTED
    client = HostClient(worker.socket, max_message_bytes=1 << 20)
    try:
        with pytest.raises(HostToolError) as caught:
            client.call("add", a=1)
        assert caught.value.kind == "unavailable"
        assert "does not serve host tools" in caught.value.message
    finally:
        client.close()


def test_host_tool_calls_free_their_argument_segments_and_take_their_results(shm_dir):
    seen: List[List[str]] = []

    def look(data: bytes) -> bytes:
        seen.append(shm_files(shm_dir))  # the argument's segment exists while the host runs
        return data[::-1]

    def fail(data: bytes) -> None:
        raise ValueError("no")

    with HostToolServer({"look": look, "fail": fail}) as host:
        client = HostClient(host.socket_path, max_message_bytes=1 << 20)
        try:
            payload = bytes(range(200))
            assert client.call("look", data=payload) == payload[::-1]
            assert len(seen) == 1 and len(seen[0]) == 1
            assert shm_files(shm_dir) == []  # argument removed by us (sender), result taken by us (receiver)
            with pytest.raises(HostToolError):
                client.call("fail", data=payload)
            assert shm_files(shm_dir) == []
        finally:
            client.close()
