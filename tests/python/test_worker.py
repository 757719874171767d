"""A real worker process, started as the host starts it, spoken to over gRPC."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import pytest

from bridge_helpers import PYTHON, PYTHON_DIR, SHOWCASE, call, result_of
from snakepit_bridge._wire import bridge_pb2 as pb

PING_BUDGET_S = 0.5  # generous: measured 10-30 ms while a tool holds the GIL on an idle machine


def test_ready_line_describes_the_worker(workers):
    worker = workers.start()
    report = worker.report
    assert report["status"] == "ready"
    assert report["pid"] == worker.process.pid
    assert report["worker_id"] == "pool-1"
    assert report["adapter"] == SHOWCASE
    assert report["implementation"] == sys.implementation.name
    assert report["python_version"].count(".") == 2
    assert report["gil_enabled"] is True
    assert report["tools"] == sorted(report["tools"])
    assert {"noop", "echo", "add", "sleep", "cpu_burn", "fail", "make_bytes", "bytes_length", "worker_info",
            "unencodable", "crash", "noisy"} <= set(report["tools"])
    assert report["idempotent_tools"] == []  # the showcase declares none (@tool(idempotent=True))


def test_execute_ping_and_list_tools(workers):
    worker = workers.start()
    stub = worker.stub()
    response = call(stub, "add", a=2**62, b=2**62 - 1)
    assert result_of(response) == 2**63 - 1
    assert response.wall_ns > 0
    ping = stub.Ping(pb.PingRequest(sent_unix_ns=time.time_ns()), timeout=10)
    assert ping.pid == worker.process.pid
    assert ping.served == 1 and ping.in_flight == 0
    assert ping.implementation == sys.implementation.name and ping.gil_enabled
    assert ping.rss_bytes > 1_000_000
    listing = stub.ListTools(pb.ListToolsRequest(), timeout=10)
    assert listing.adapter == SHOWCASE
    add = next(spec for spec in listing.tools if spec.name == "add")
    assert [(p.name, p.type, p.required) for p in add.parameters] == [("a", "float", True), ("b", "float", True)]
    fail = next(spec for spec in listing.tools if spec.name == "fail")
    assert fail.parameters[0].default_value.string_value == "boom"
    info = result_of(call(stub, "worker_info"))
    assert info["pid"] == worker.process.pid and info["ppid"] == os.getpid()
    assert info["worker_id"] == "pool-1"
    assert info["thread_env"]["OMP_NUM_THREADS"] == "1"
    assert isinstance(info["setup_unix_s"], float)


def test_errors_are_typed_and_the_worker_keeps_serving(workers):
    stub = workers.start().stub()
    unknown = call(stub, "nope").error
    assert unknown.kind == pb.UNKNOWN_TOOL
    assert unknown.message.startswith("unknown tool 'nope'; known tools: add, ")
    bad = call(stub, "add", a=1).error
    assert (bad.kind, bad.message) == (pb.BAD_ARGUMENTS, "missing required argument 'b' (float)")
    failed = call(stub, "fail", message="no luck", exception="KeyError").error
    assert failed.kind == pb.PYTHON_EXCEPTION
    assert (failed.python_type, failed.message) == ("KeyError", "'no luck'")
    assert "Traceback (most recent call last)" in failed.traceback and "in fail" in failed.traceback
    unencodable = call(stub, "unencodable").error
    assert unencodable.kind == pb.ENCODE_FAILED
    assert unencodable.message == (
        "result of tool 'unencodable' cannot be encoded: unsupported Python type 'set' at result['a'][2]")
    assert result_of(call(stub, "echo", value={"still": ["here", 1, None]})) == {"still": ["here", 1, None]}


def _ping_while_running(stub, tool: str, **arguments) -> None:
    running = stub.Execute.future(pb.ExecuteRequest(tool=tool, arguments=_args(arguments)), timeout=30)
    deadline = time.monotonic() + 10
    while stub.Ping(pb.PingRequest(), timeout=5).in_flight == 0:  # until the tool has started
        assert time.monotonic() < deadline
    for _ in range(3):
        start = time.monotonic()
        ping = stub.Ping(pb.PingRequest(), timeout=5)
        assert time.monotonic() - start < PING_BUDGET_S
        assert ping.in_flight == 1
    assert not running.done(), "the tool ended before the pings were answered: the test proves nothing"
    assert running.result().WhichOneof("outcome") == "result"


def _args(arguments):
    from snakepit_bridge.values import encode_map

    return encode_map(arguments)


def test_ping_is_answered_while_a_tool_sleeps(workers):
    _ping_while_running(workers.start(concurrency=1).stub(), "sleep", seconds=2.0)


def test_ping_is_answered_while_a_tool_burns_cpu(workers):
    stub = workers.start(concurrency=1).stub()
    _ping_while_running(stub, "cpu_burn", milliseconds=2000)
    burn = call(stub, "cpu_burn", milliseconds=200)
    assert burn.wall_ns >= 200_000_000
    assert 0 < burn.cpu_ns <= burn.wall_ns + 1_000_000  # the share of a core depends on the machine's load


def test_noisy_output_never_touches_the_protocol(workers, tmp_path):
    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
        stub = workers.start(stdout=out, stderr=err).stub()
        assert result_of(call(stub, "noisy", lines=20000)) == 20000
        assert result_of(call(stub, "add", a=1, b=2)) == 3
    assert (tmp_path / "out").read_text().count("noisy stdout line") == 20000
    assert (tmp_path / "err").read_text().count("noisy stderr line") == 20000
    quiet = workers.start().stub()  # stdout and stderr to /dev/null
    assert result_of(call(quiet, "noisy", lines=50000)) == 50000


def test_startup_failure_is_one_json_line_and_exit_3(workers):
    worker = workers.start("nosuch.module.Adapter", expect="error")
    assert worker.wait() == 3
    report = worker.report
    assert report["kind"] == "startup_failed"
    assert report["message"] == (
        "cannot import adapter 'nosuch.module.Adapter': ModuleNotFoundError: No module named 'nosuch'")
    assert report["python_type"] == "ModuleNotFoundError"
    assert report["traceback"].startswith("Traceback (most recent call last)")
    not_adapter = workers.start("json.JSONDecoder", expect="error")
    assert not_adapter.wait() == 3
    assert not_adapter.report["message"] == "adapter 'json.JSONDecoder' is not a subclass of snakepit_bridge.BaseAdapter"


ADAPTER_MODULE = textwrap.dedent('''
    import os
    from snakepit_bridge import BaseAdapter, tool

    class Lifecycle(BaseAdapter):
        def setup(self):
            if os.environ.get("FAIL_SETUP"):
                raise RuntimeError("no model file")
            self.marker = os.environ["MARKER"]

        def teardown(self):
            with open(self.marker, "w") as out:
                out.write("torn down")

        @tool
        def slow(self, seconds: float) -> str:
            import time
            time.sleep(seconds)
            return "finished"
''')


@pytest.fixture
def adapter_dir(tmp_path) -> Path:
    (tmp_path / "lifecycle_adapter.py").write_text(ADAPTER_MODULE)
    return tmp_path


def test_setup_failure_reports_the_exception(workers, adapter_dir):
    worker = workers.start("lifecycle_adapter.Lifecycle", python_path=(adapter_dir,), expect="error",
                           extra_env={"FAIL_SETUP": "1", "MARKER": "unused"})
    assert worker.wait() == 3
    assert worker.report["message"] == (
        "setup() of adapter 'lifecycle_adapter.Lifecycle' failed: RuntimeError: no model file")
    assert worker.report["python_type"] == "RuntimeError"
    assert "raise RuntimeError" in worker.report["traceback"]


def test_stop_rpc_lets_calls_finish_then_tears_down_and_exits_0(workers, adapter_dir):
    marker = adapter_dir / "marker"
    worker = workers.start("lifecycle_adapter.Lifecycle", python_path=(adapter_dir,),
                           extra_env={"MARKER": str(marker)})
    stub = worker.stub()
    running = stub.Execute.future(pb.ExecuteRequest(tool="slow", arguments=_args({"seconds": 0.5})), timeout=20)
    while stub.Ping(pb.PingRequest(), timeout=5).in_flight == 0:
        pass
    stub.Stop(pb.StopRequest(grace_ms=5000), timeout=5)
    assert result_of(running.result()) == "finished"
    assert worker.wait() == 0
    assert marker.read_text() == "torn down"


def test_sigterm_stops_gracefully(workers, adapter_dir):
    marker = adapter_dir / "marker"
    worker = workers.start("lifecycle_adapter.Lifecycle", python_path=(adapter_dir,),
                           extra_env={"MARKER": str(marker)})
    worker.stub().Ping(pb.PingRequest(), timeout=5)  # an open client connection must not delay the stop
    start = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert time.monotonic() - start < 3
    assert marker.read_text() == "torn down"


def test_closing_the_lifeline_ends_the_worker(workers):
    worker = workers.start()
    stub = worker.stub()
    stub.Execute.future(pb.ExecuteRequest(tool="sleep", arguments=_args({"seconds": 30})), timeout=60)
    worker.close_lifeline()
    assert worker.wait(10) == 70


def test_wrong_parent_pid_exits_70_at_once(workers):
    worker = workers.start(parent_pid=os.getpid() + 4_000_000, expect="")
    assert worker.report == {}
    assert worker.wait() == 70


def test_crash_is_a_dead_worker(workers):
    worker = workers.start()
    with pytest.raises(grpc.RpcError) as failure:
        call(worker.stub(), "crash", exit_code=13)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert worker.wait() == 13


def test_payload_limit(workers):
    limit = 6 * 1024 * 1024  # above gRPC's default 4 MiB, so the raised limits are exercised
    stub = workers.start(max_message_bytes=limit).stub()
    assert result_of(call(stub, "bytes_length", data=bytes(5 * 1024 * 1024))) == 5 * 1024 * 1024
    assert len(result_of(call(stub, "make_bytes", size=5 * 1024 * 1024))) == 5 * 1024 * 1024
    too_large = call(stub, "make_bytes", size=limit).error
    assert too_large.kind == pb.PAYLOAD_TOO_LARGE
    assert too_large.message == (
        f"result of tool 'make_bytes' is {limit + 5} bytes, over the payload limit of {limit} bytes (max_payload_bytes)")
    arguments_too_large = call(stub, "bytes_length", data=bytes(limit)).error
    assert arguments_too_large.kind == pb.PAYLOAD_TOO_LARGE
    assert result_of(call(stub, "noop")) is None


def test_check_reports_versions():
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    done = subprocess.run([PYTHON, "-m", "snakepit_bridge.worker", "--check"], env=env, capture_output=True,
                          timeout=30, check=True)
    report = json.loads(done.stdout)
    assert report["status"] == "ok"
    assert report["snakepit_bridge_version"] == "0.1.0"
    assert report["grpc_version"] and report["protobuf_version"]


def test_bad_command_line_exits_2():
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    done = subprocess.run([PYTHON, "-m", "snakepit_bridge.worker", "--adapter", SHOWCASE], env=env,
                          capture_output=True, timeout=30)
    assert done.returncode == 2
    assert b"--socket" in done.stderr


def test_concurrency_runs_sync_tools_side_by_side(workers):
    stub = workers.start(concurrency=2).stub()
    start = time.monotonic()
    calls = [stub.Execute.future(pb.ExecuteRequest(tool="sleep", arguments=_args({"seconds": 0.5})), timeout=20)
             for _ in range(2)]
    assert all(result_of(c.result()) >= 0.5 for c in calls)
    assert time.monotonic() - start < 0.95


def test_a_call_whose_deadline_passes_while_queued_times_out(workers):
    stub = workers.start(concurrency=1).stub()
    first = stub.Execute.future(pb.ExecuteRequest(tool="sleep", arguments=_args({"seconds": 0.5})), timeout=20)
    while stub.Ping(pb.PingRequest(), timeout=5).in_flight == 0:
        pass
    queued = stub.Execute(pb.ExecuteRequest(tool="noop", timeout_ms=100), timeout=20)
    assert queued.error.kind == pb.TIMEOUT
    assert queued.error.message.startswith("tool 'noop' did not start before its deadline (timeout_ms=100")
    assert result_of(first.result()) >= 0.5


def test_calls_still_running_after_the_grace_are_cancelled(workers):
    worker = workers.start()
    stub = worker.stub()
    running = stub.Execute.future(pb.ExecuteRequest(tool="sleep", arguments=_args({"seconds": 30})), timeout=60)
    while stub.Ping(pb.PingRequest(), timeout=5).in_flight == 0:
        pass
    start = time.monotonic()
    stub.Stop(pb.StopRequest(grace_ms=200), timeout=5)
    assert worker.wait() == 0
    assert time.monotonic() - start < 5
    with pytest.raises(grpc.RpcError) as failure:
        running.result()
    assert failure.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
