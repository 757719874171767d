"""The gateway of `snakepit run`, driven from other processes: real trees, real workers, the
command line (`call --connect`, `ls`) and raw gRPC clients."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SNAKEPIT = os.environ.get("SNAKEPIT_BIN", "snakepit")
ROOT = Path(__file__).resolve().parents[2]
TLS = Path(__file__).resolve().parent / "tls"
sys.path.insert(0, str(ROOT / "python"))

grpc = pytest.importorskip("grpc")
from snakepit_bridge import values  # noqa: E402
from snakepit_bridge._wire import gateway_pb2 as gw  # noqa: E402
from snakepit_bridge._wire import gateway_pb2_grpc as gw_grpc  # noqa: E402

POOL = """
[supervisors.app]
strategy = "one_for_one"
children = ["showcase"]

[pools.showcase]
adapter = "snakepit_bridge.showcase.ShowcaseAdapter"
size = 2
request_timeout_ms = 30000
"""


class Tree:
    """A `snakepit run --print-address` of a tree file, stopped with SIGTERM."""

    def __init__(self, tmp_path: Path, gateway: str = "") -> None:
        self.file = tmp_path / "tree.toml"
        self.file.write_text(POOL + gateway)
        self.proc = subprocess.Popen([SNAKEPIT, "run", "--print-address", str(self.file)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"snakepit run printed no address: {err}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return err


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path)
    yield t
    t.stop()


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEPIT, *args], capture_output=True, text=True, timeout=timeout)


def error_of(proc: subprocess.CompletedProcess) -> dict:
    last = [line for line in proc.stderr.splitlines() if line.startswith("{")][-1]
    return json.loads(last)["error"]


def stub(address: str, credentials=None, token: str = ""):
    channel = (grpc.secure_channel(address, credentials) if credentials is not None
               else grpc.insecure_channel(address))
    return channel, gw_grpc.GatewayStub(channel), ([("authorization", f"Bearer {token}")] if token else None)


def call_request(tool: str, **arguments) -> gw.CallRequest:
    return gw.CallRequest(pool="showcase", tool=tool, arguments=values.encode_map(arguments))


def test_the_command_line_calls_streams_and_lists_through_the_gateway(tree):
    assert tree.address.startswith("unix:/") and tree.address.endswith("/gateway.sock")
    proc = run("call", "--connect", tree.address, "--pool", "showcase", "--tool", "add",
               "--args", '{"a": 2, "b": 40}')
    assert (proc.returncode, proc.stdout.strip()) == (0, "42"), proc.stderr
    proc = run("call", "--connect", tree.address, "--pool", "showcase", "--tool", "count",
               "--args", '{"n": 4}', "--stream")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x) for x in proc.stdout.split()] == [0, 1, 2, 3]
    proc = run("call", "--connect", tree.address, "--pool", "showcase", "--tool", "fail",
               "--args", '{"exception": "KeyError"}')
    assert proc.returncode == 1
    err = error_of(proc)
    assert (err["kind"], err["python_type"]) == ("python_exception", "KeyError")
    assert "Traceback" in err["traceback"]
    proc = run("call", "--connect", tree.address, "--pool", "nope", "--tool", "add")
    assert error_of(proc)["kind"] == "bad_arguments" and "its pools: showcase" in error_of(proc)["message"]
    listed = json.loads(run("ls", "--json").stdout)
    assert any(r["pid"] == tree.proc.pid and r["gateway"] == tree.address for r in listed)


def test_typed_errors_deadlines_map_sessions_pools_and_status(tree):
    channel, gateway, _ = stub(tree.address)
    with channel:
        reply = gateway.Call(call_request("nope"))
        assert reply.failure.kind == "unknown_tool" and "echo" in reply.failure.message
        reply = gateway.Call(call_request("add", a="x", b=1))
        assert reply.failure.kind in ("bad_arguments", "python_exception")
        # The gRPC deadline is the request's deadline in the pool.
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as failure:
            gateway.Call(call_request("sleep", seconds=3), timeout=0.3)
        assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2
        items = [values.encode_map({"a": i, "b": 1}) for i in range(100)]
        items[50] = values.encode_map({"a": "x", "b": 1})
        reply = gateway.Map(gw.MapRequest(pool="showcase", tool="add", items=items, chunk=8))
        assert len(reply.items) == 100
        assert [values.decode(x.result) for x in reply.items[:3]] == [1, 2, 3]
        assert reply.items[50].HasField("failure") and not reply.items[51].HasField("failure")
        opened = gateway.OpenSession(gw.SessionRequest(pool="showcase"))
        put = call_request("session_put", key="k", value=[1, 2])
        put.session_id = opened.session_id
        assert not gateway.Call(put).HasField("failure")
        get = call_request("session_get", key="k")
        get.session_id = opened.session_id
        assert values.decode(gateway.Call(get).result) == [1, 2]
        assert gateway.CloseSession(gw.SessionRequest(pool="showcase", session_id=opened.session_id)).closed
        pools = gateway.ListPools(gw.ListPoolsRequest())
        assert pools.tree == "app" and [p.name for p in pools.pools] == ["showcase"]
        status = json.loads(gateway.Status(gw.StatusRequest(pool="showcase")).json)
        assert [p["name"] for p in status["pools"]] == ["showcase"]
        assert gateway.Status(gw.StatusRequest(pool="nope")).failure.kind == "bad_arguments"


def test_a_cancelled_stream_closes_the_generator_and_the_gateway_serves_on(tree):
    channel, gateway, _ = stub(tree.address)
    with channel:
        it = gateway.Stream(call_request("count", n=100000, delay_ms=5))
        got = [values.decode(next(it).item) for _ in range(3)]
        it.cancel()
        assert got == [0, 1, 2]
        # Both workers serve again (the generator's slot came back).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = json.loads(gateway.Status(gw.StatusRequest(pool="showcase")).json)
            if status["pools"][0]["busy"] == 0:
                break
            time.sleep(0.05)
        assert status["pools"][0]["busy"] == 0
        assert values.decode(gateway.Call(call_request("add", a=1, b=1)).result) == 2


def test_a_client_that_goes_away_mid_call_leaks_no_slot(tmp_path):
    tree = Tree(tmp_path, '\n[gateway]\nmax_calls = 1\n')
    try:
        channel, gateway, _ = stub(tree.address)
        with channel:
            # It gives up: gRPC's deadline ends the call, or (the same instant) the pool's
            # deadline answers first with a typed timeout.
            try:
                reply = gateway.Call(call_request("sleep", seconds=0.8), timeout=0.1)
                assert reply.HasField("failure") and reply.failure.kind == "timeout", reply
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
            time.sleep(1.2)  # the call ends in the pool; its slot in the gateway comes back
            assert values.decode(gateway.Call(call_request("add", a=1, b=2)).result) == 3
    finally:
        tree.stop()


def test_the_call_limit_is_a_refusal_naming_its_key(tmp_path):
    tree = Tree(tmp_path, '\n[gateway]\nmax_calls = 1\n')
    try:
        channel, gateway, _ = stub(tree.address)
        with channel:
            slow = threading.Thread(target=lambda: gateway.Call(call_request("sleep", seconds=1)))
            slow.start()
            time.sleep(0.3)
            with pytest.raises(grpc.RpcError) as refused:
                gateway.Call(call_request("add", a=1, b=2))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_calls" in refused.value.details()
            slow.join()
            assert values.decode(gateway.Call(call_request("add", a=1, b=2)).result) == 3
    finally:
        tree.stop()


def test_a_token_is_required_when_configured(tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    token.chmod(0o600)
    tree = Tree(tmp_path, f'\n[gateway]\ntoken_file = "{token}"\n')
    try:
        channel, gateway, _ = stub(tree.address)
        with channel:
            for metadata in (None, [("authorization", "Bearer wrong")]):
                with pytest.raises(grpc.RpcError) as refused:
                    gateway.Call(call_request("add", a=1, b=2), metadata=metadata)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            reply = gateway.Call(call_request("add", a=1, b=2),
                                 metadata=[("authorization", "Bearer s3cret-token")])
            assert values.decode(reply.result) == 3
        proc = run("call", "--connect", tree.address, "--pool", "showcase", "--tool", "add",
                   "--args", '{"a": 1, "b": 1}', "--token-file", str(token))
        assert (proc.returncode, proc.stdout.strip()) == (0, "2"), proc.stderr
        proc = run("call", "--connect", tree.address, "--pool", "showcase", "--tool", "add")
        assert error_of(proc)["kind"] == "unauthenticated"
    finally:
        tree.stop()


def test_tcp_is_loopback_unless_tls_or_insecure(tmp_path):
    tree = Tree(tmp_path, '\n[gateway]\nlisten = "127.0.0.1:0"\n')
    try:
        host, port = tree.address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        proc = run("call", "--connect", tree.address, "--pool", "showcase", "--tool", "add",
                   "--args", '{"a": 1, "b": 1}')
        assert proc.stdout.strip() == "2", proc.stderr
    finally:
        tree.stop()
    refused = tmp_path / "open.toml"
    refused.write_text(POOL + '\n[gateway]\nlisten = "0.0.0.0:0"\n')
    proc = run("run", str(refused))
    assert proc.returncode == 1
    assert "not a loopback address" in proc.stderr and "insecure = true" in proc.stderr


def private_tls(directory: Path) -> Path:
    """The committed test certificates, copied where the keys can be private (git keeps no
    file modes but the executable bit: a fresh clone's keys are world-readable)."""
    target = directory / "tls"
    target.mkdir(mode=0o700)
    for source in TLS.iterdir():
        if source.suffix in (".pem", ".key"):
            shutil.copy(source, target / source.name)
            (target / source.name).chmod(0o600 if source.suffix == ".key" else 0o644)
    return target


def test_tls_with_a_good_and_a_bad_certificate(tmp_path):
    tls = private_tls(tmp_path)
    gateway_table = (f'\n[gateway]\nlisten = "127.0.0.1:0"\ntls_cert = "{tls / "server.pem"}"\n'
                     f'tls_key = "{tls / "server.key"}"\n')
    tree = Tree(tmp_path, gateway_table)
    try:
        proc = run("call", "--connect", tree.address, "--pool", "showcase", "--tool", "add",
                   "--args", '{"a": 1, "b": 1}', "--ca-file", str(TLS / "ca.pem"))
        assert (proc.returncode, proc.stdout.strip()) == (0, "2"), proc.stderr
        # A client that trusts another CA refuses the server, and a plain-text one gets nowhere.
        for extra in (["--ca-file", str(TLS / "other_ca.pem")], []):
            proc = run("call", "--connect", tree.address, "--pool", "showcase", "--tool", "add",
                       "--timeout-ms", "3000", *extra)
            assert proc.returncode == 1 and error_of(proc)["kind"] in ("unavailable", "timeout")
    finally:
        tree.stop()


def test_a_tls_key_others_can_read_is_refused_before_serving(tmp_path):
    tls = private_tls(tmp_path)
    (tls / "server.key").chmod(0o644)
    tree_file = tmp_path / "tree.toml"
    tree_file.write_text(POOL + f'\n[gateway]\nlisten = "127.0.0.1:0"\ntls_cert = "{tls / "server.pem"}"\n'
                                f'tls_key = "{tls / "server.key"}"\n')
    proc = run("run", str(tree_file), timeout=60)
    assert proc.returncode == 1
    assert "tls_key" in proc.stderr and "chmod 600" in proc.stderr, proc.stderr


def test_tls_with_client_certificates(tmp_path):
    tls = private_tls(tmp_path)
    gateway_table = (f'\n[gateway]\nlisten = "127.0.0.1:0"\ntls_cert = "{tls / "server.pem"}"\n'
                     f'tls_key = "{tls / "server.key"}"\ntls_client_ca = "{tls / "ca.pem"}"\n')
    tree = Tree(tmp_path, gateway_table)
    try:
        ca = (TLS / "ca.pem").read_bytes()
        with_cert = grpc.ssl_channel_credentials(ca, (TLS / "client.key").read_bytes(),
                                                 (TLS / "client.pem").read_bytes())
        channel, gateway, _ = stub(tree.address, with_cert)
        with channel:
            assert values.decode(gateway.Call(call_request("add", a=2, b=2)).result) == 4
        channel, gateway, _ = stub(tree.address, grpc.ssl_channel_credentials(ca))
        with channel:
            with pytest.raises(grpc.RpcError) as refused:
                gateway.Call(call_request("add", a=2, b=2), timeout=3)
            assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        tree.stop()


def test_a_tree_stopped_under_a_client_gives_a_clear_error_and_nothing_hangs(tmp_path):
    tree = Tree(tmp_path)
    channel, gateway, _ = stub(tree.address)
    outcome = {}

    def slow_call():
        try:
            outcome["reply"] = gateway.Call(call_request("sleep", seconds=20), timeout=60)
        except grpc.RpcError as exc:
            outcome["code"] = exc.code()

    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(0.5)
    started = time.monotonic()
    tree.stop()
    caller.join(timeout=30)
    assert not caller.is_alive()
    assert time.monotonic() - started < 20
    if "reply" in outcome:
        assert outcome["reply"].failure.kind in ("pool_stopped", "worker_crashed")
    else:
        assert outcome["code"] in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    with pytest.raises(grpc.RpcError) as gone:
        gateway.Call(call_request("add", a=1, b=1), timeout=3)
    assert gone.value.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()


def test_snakepit_map_runs_through_the_gateway_in_order_with_per_item_errors(tree):
    lines = [json.dumps({"a": i, "b": 1}) for i in range(3000)]
    lines[1234] = json.dumps({"a": "x", "b": 1})
    proc = subprocess.run([SNAKEPIT, "map", "--connect", tree.address, "--pool", "showcase",
                           "--tool", "add", "--chunk", "50"],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1  # one item failed
    out = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(out) == 3000
    assert out[:3] == [1, 2, 3] and out[2999] == 3000
    assert out[1234]["error"]["kind"] == "bad_arguments"
    assert "3000 items" in proc.stderr and "1 failed (bad_arguments: 1)" in proc.stderr


def test_call_repeat_and_concurrency_through_the_gateway(tree):
    proc = run("call", "--connect", tree.address, "--pool", "showcase", "--tool", "add",
               "--args", '{"a": 1, "b": 2}', "--repeat", "200", "--concurrency", "4")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["3"] * 200
    assert "200 calls, 4 in flight, 0 failed" in proc.stderr
    failing = run("call", "--connect", tree.address, "--pool", "showcase", "--tool", "fail",
                  "--repeat", "3")
    assert failing.returncode == 1 and "3 failed" in failing.stderr


@pytest.mark.skipif(not os.environ.get("SNAKEPIT_CLIENT_EXAMPLE"), reason="built with the tests")
def test_the_cpp_client_example_of_the_docs_prints_what_they_say(tree):
    proc = subprocess.run([os.environ["SNAKEPIT_CLIENT_EXAMPLE"], tree.address],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = (ROOT / "docs" / "client.md").read_text()
    printed = doc[doc.index("It prints:"):].split("```")[1].strip()
    # The tool count follows the showcase adapter; the rest is exact.
    lines = proc.stdout.strip().splitlines()
    expected = printed.splitlines()
    assert lines[:-1] == expected[:-1]
    assert lines[-1].startswith("pool showcase: ") and lines[-1].endswith(" tools")


def test_the_calls_stream_answers_every_call_of_a_hostile_frame(tree):
    """Duplicate and huge ids, an unknown pool and a tool that fails, in one frame: one answer
    per call, each typed, and the stream still serves a good call after them."""
    channel, gateway, _ = stub(tree.address)
    with channel:
        bad = gw.CallFrame(calls=[
            gw.MuxCall(id=7, call=call_request("add", a=1, b=2)),
            gw.MuxCall(id=7, call=call_request("add", a=2, b=2)),
            gw.MuxCall(id=2**64 - 1, call=gw.CallRequest(pool="nope", tool="add")),
            gw.MuxCall(id=9, call=call_request("no_such_tool")),
            gw.MuxCall(id=10, call=call_request("add", a="x", b=1), timeout_us=2**64 - 1),
        ])
        good = gw.CallFrame(calls=[gw.MuxCall(id=11, call=call_request("add", a=40, b=2))])
        replies = []
        for frame in gateway.Calls(iter([bad, good]), timeout=30):
            replies.extend(frame.replies)
        assert sorted(r.id for r in replies) == [7, 7, 9, 10, 11, 2**64 - 1]
        by_id = {}
        for r in replies:
            by_id.setdefault(r.id, []).append(r.reply)
        assert sorted(values.decode(r.result) for r in by_id[7]) == [3, 4]
        assert by_id[2**64 - 1][0].failure.kind == "bad_arguments"
        assert by_id[9][0].failure.kind == "unknown_tool"
        assert by_id[10][0].failure.kind in ("bad_arguments", "python_exception")
        assert values.decode(by_id[11][0].result) == 42
