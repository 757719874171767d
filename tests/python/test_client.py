"""snakepit_bridge.client against a real tree: `snakepit run --print-address` serving the Gateway,
real worker processes, no mocks.

The binary is $SNAKEPIT_BIN (CTest sets it), else `snakepit` on PATH; without one the tests that
need a tree are skipped.
"""

from __future__ import annotations

import asyncio
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import pytest

from bridge_helpers import ROOT
from snakepit_bridge.client import AsyncClient, Client, GatewayError, StreamSummary, connect

SNAKEPIT = os.environ.get("SNAKEPIT_BIN", "snakepit")
TREE = ROOT / "examples" / "one_pool.toml"
POOL = "showcase"  # examples/one_pool.toml's pool
START_TIMEOUT_S = 60.0


def snakepit_binary() -> str:
    """The snakepit binary, or skips the test when there is none."""
    found = shutil.which(SNAKEPIT)
    if found is None:
        pytest.skip(f"no snakepit binary ({SNAKEPIT!r}: set SNAKEPIT_BIN or build it and put it on PATH)")
    return found


class Tree:
    """One `snakepit run --print-address TREE`: its process, gateway address and log."""

    def __init__(self, tree: Path) -> None:
        binary = snakepit_binary()
        # A short private runtime parent: socket paths stay under 107 bytes, and nothing is shared.
        self.runtime = Path(tempfile.mkdtemp(prefix="spc", dir="/tmp"))
        self.log_path = self.runtime / "run.log"
        env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(self.runtime))
        env.setdefault("SNAKEPIT_PYTHON", sys.executable)
        env.pop("SNAKEPIT_GATEWAY", None)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([binary, "run", "--print-address", str(tree)], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=log, env=env)
        try:
            self.address = self._first_line()
        except BaseException:
            self.kill()
            raise
        # Keep reading stdout, so the tree never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def _first_line(self) -> str:
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT_S
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            assert left > 0, f"no address on stdout within {START_TIMEOUT_S} s; log:\n{self.log()}"
            if not selector.select(left):
                continue
            byte = os.read(self.proc.stdout.fileno(), 1)
            assert byte, f"snakepit run exited ({self.proc.poll()}) before printing its address; log:\n{self.log()}"
            line += byte
        selector.close()
        address = line.decode().strip()
        assert address.startswith("unix:") or re.fullmatch(r".+:\d+", address), address
        return address

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, client: Client) -> None:
        """Waits until every worker of the pool is ready."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                (pool,) = [p for p in client.pools() if p["name"] == POOL]
                if pool["state"] == "ready" and pool["ready"] == pool["size"]:
                    return
            except GatewayError:
                pass
            assert time.monotonic() < deadline, f"pool {POOL!r} not ready; log:\n{self.log()}"
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM, then the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        finally:
            shutil.rmtree(self.runtime, ignore_errors=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.runtime, ignore_errors=True)


@pytest.fixture(scope="module")
def tree() -> Iterator[Tree]:
    running = Tree(TREE)
    try:
        with Client(running.address, timeout=30) as client:
            running.wait_ready(client)
        yield running
    except BaseException:
        running.kill()
        raise
    log = running.log()
    code = running.stop()
    assert code == 0, f"snakepit run exited with {code}; log:\n{log}"


@pytest.fixture
def client(tree: Tree) -> Iterator[Client]:
    with Client(tree.address, timeout=30) as opened:
        yield opened


# --- calls ---------------------------------------------------------------------------------------

def test_the_address_is_a_unix_socket_of_the_tree(tree: Tree):
    assert tree.address.startswith("unix:")
    assert f"gateway listening on {tree.address}" in tree.log()


def test_call_round_trips_values(client: Client):
    assert client.call(POOL, "add", a=2, b=40) == 42
    value = {"none": None, "yes": True, "big": 2**63 - 1, "neg": -(2**63), "pi": 3.25, "text": "héllo ✓",
             "bytes": b"\x00\x01\xff", "empty": b"", "list": [1, [2, [3]], {}], "nested": {"a": {"b": [None]}}}
    assert client.call(POOL, "echo", value=value) == value
    assert type(client.call(POOL, "echo", value=bytearray(b"ab"))) is bytes
    assert client.call(POOL, "echo", value=(1, 2)) == [1, 2]


def test_call_with_takes_any_argument_name(client: Client):
    assert client.call_with(POOL, "echo", {"value": "x"}) == "x"
    # `timeout` here is an argument of the tool, not the call's deadline: echo refuses it.
    with pytest.raises(GatewayError) as info:
        client.call_with(POOL, "echo", {"value": 1, "timeout": 5})
    assert info.value.kind == "bad_arguments"
    assert "timeout" in info.value.message


def test_numpy_arrays_round_trip(client: Client):
    np = pytest.importorskip("numpy")
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    back = client.call(POOL, "echo", value=array)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32 and back.shape == (3, 4)
    assert np.array_equal(back, array)
    assert not back.flags.writeable
    made = client.call(POOL, "make_array", dtype="int16", shape=[2, 3], order="F")
    assert made.dtype == np.int16 and made.tolist() == [[0, 1, 2], [3, 4, 5]]
    info = client.call(POOL, "array_info", value=np.zeros((2, 2), dtype=np.uint8))
    assert info["dtype"] == "uint8" and info["shape"] == [2, 2] and info["shared"] is False


def test_an_unencodable_argument_fails_before_sending(client: Client):
    with pytest.raises(GatewayError) as info:
        client.call(POOL, "echo", value={"a": {1, 2}})
    assert info.value.kind == "encode_failed"
    assert "set" in info.value.message and info.value.code is None


# --- typed errors --------------------------------------------------------------------------------

def test_unknown_tool_lists_the_tools(client: Client):
    with pytest.raises(GatewayError) as info:
        client.call(POOL, "no_such_tool")
    assert info.value.kind == "unknown_tool"
    assert "echo" in info.value.message
    assert str(info.value).startswith("[unknown_tool] ")


def test_python_exception_carries_type_and_traceback(client: Client):
    with pytest.raises(GatewayError) as info:
        client.call(POOL, "fail", message="bad day", exception="KeyError")
    error = info.value
    assert error.kind == "python_exception"
    assert error.python_type == "KeyError"
    assert "bad day" in error.message
    assert "Traceback" in error.traceback and "KeyError" in error.traceback
    assert error.code is None  # a failure the gateway answered, not a failed RPC


def test_bad_arguments(client: Client):
    with pytest.raises(GatewayError) as info:
        client.call(POOL, "add", a=1)
    assert info.value.kind == "bad_arguments"
    assert "b" in info.value.message
    with pytest.raises(GatewayError) as info:
        client.call(POOL, "add", a=1, b=2, c=3)
    assert info.value.kind == "bad_arguments"


def test_unknown_pool_is_a_typed_failure_listing_the_pools(client: Client):
    for call in (lambda: client.call("no_such_pool", "add", a=1, b=2),
                 lambda: list(client.stream("no_such_pool", "count", n=1)),
                 lambda: client.open_session("no_such_pool")):
        with pytest.raises(GatewayError) as info:
            call()
        assert info.value.kind == "bad_arguments"
        assert "no_such_pool" in info.value.message and POOL in info.value.message


def test_the_timeout_is_the_calls_deadline(client: Client):
    started = time.monotonic()
    with pytest.raises(GatewayError) as info:
        client.call(POOL, "sleep", seconds=10, timeout=0.5)
    assert info.value.kind == "timeout"
    assert time.monotonic() - started < 5
    assert client.call(POOL, "add", a=1, b=1) == 2  # the pool serves on


def test_the_clients_default_timeout_applies(tree: Tree):
    with Client(tree.address, timeout=0.5) as short:
        with pytest.raises(GatewayError) as info:
            short.call(POOL, "sleep", seconds=10)
        assert info.value.kind == "timeout"
        assert short.call(POOL, "sleep", seconds=0.01, timeout=10) >= 0.01  # a call's own wins


# --- map -----------------------------------------------------------------------------------------

def test_map_returns_one_outcome_per_item_in_order(client: Client):
    items = [{"a": index, "b": 1} for index in range(10)]
    items[4] = {"a": 1}  # this one fails, the others do not
    outcomes = client.map(POOL, "add", items, chunk=3)
    assert len(outcomes) == 10
    assert [o for i, o in enumerate(outcomes) if i != 4] == [i + 1 for i in range(10) if i != 4]
    assert isinstance(outcomes[4], GatewayError) and outcomes[4].kind == "bad_arguments"
    python = client.map(POOL, "fail", [{"message": "one"}, {"message": "two", "exception": "KeyError"}])
    assert [(o.kind, o.python_type) for o in python] == [("python_exception", "ValueError"),
                                                         ("python_exception", "KeyError")]
    assert client.map(POOL, "add", []) == []


def test_map_of_an_unknown_pool_fails_every_item(client: Client):
    outcomes = client.map("no_such_pool", "add", [{"a": 1, "b": 2}, {"a": 3, "b": 4}])
    assert [(o.kind, "no_such_pool" in o.message) for o in outcomes] == [("bad_arguments", True)] * 2


def test_map_past_its_deadline_is_a_timeout(client: Client):
    # The deadline holds on both sides: the client's gRPC deadline raises, or the pool, which
    # got the same deadline, answers first with every item timed out. Which one wins is a race.
    started = time.monotonic()
    try:
        outcomes = client.map(POOL, "sleep", [{"seconds": 10}] * 2, timeout=0.5)
    except GatewayError as error:
        assert error.kind == "timeout"
    else:
        assert len(outcomes) == 2
        assert all(isinstance(o, GatewayError) and o.kind == "timeout" for o in outcomes), outcomes
    assert time.monotonic() - started < 5


# --- streams -------------------------------------------------------------------------------------

def closed_log(client: Client, session: str, correlation_id: str) -> Optional[Dict[str, Any]]:
    """How the tracked generator of ``correlation_id`` ended, once its worker recorded it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for entry in client.call(POOL, "stream_closed_log", session=session):
            if entry["correlation_id"] == correlation_id:
                return entry
        time.sleep(0.05)
    return None


def test_stream_yields_items_in_order_then_the_summary(client: Client):
    stream = client.stream(POOL, "count", n=50)
    assert list(stream) == list(range(50))
    assert isinstance(stream.summary, StreamSummary)
    assert stream.summary.items == 50 and stream.summary.worker_id
    assert list(client.stream(POOL, "count", n=0)) == []
    assert list(client.stream_with(POOL, "async_count", {"n": 3}, window=1)) == [0, 1, 2]


def test_a_stream_failure_raises_after_the_items(client: Client):
    items = []
    with pytest.raises(GatewayError) as info:
        for item in client.stream(POOL, "fail_after", n=3):
            items.append(item)
    assert items == [0, 1, 2]
    assert info.value.kind == "python_exception" and info.value.python_type == "ValueError"
    with pytest.raises(GatewayError) as info:
        list(client.stream(POOL, "no_such_tool"))
    assert info.value.kind == "unknown_tool"


def test_closing_a_stream_early_closes_the_generator(client: Client):
    with client.session(POOL) as session:  # the session keeps the stream and the log on one worker
        correlation_id = f"close-{uuid.uuid4().hex}"
        stream = client.stream(POOL, "tracked", n=100000, delay_ms=10, session=session,
                               correlation_id=correlation_id)
        assert [next(stream) for _ in range(3)] == [0, 1, 2]
        stream.close()
        entry = closed_log(client, session, correlation_id)
        assert entry is not None and entry["how"] == "closed", entry
        assert entry["yielded"] < 1000
        assert stream.summary is None
        assert list(stream) == []  # a closed stream yields nothing more

        correlation_id = f"break-{uuid.uuid4().hex}"
        for item in client.stream(POOL, "tracked", n=100000, delay_ms=10, session=session,
                                  correlation_id=correlation_id):
            if item == 2:
                break  # dropping the iterator cancels the RPC
        entry = closed_log(client, session, correlation_id)
        assert entry is not None and entry["how"] == "closed", entry
    assert client.call(POOL, "add", a=2, b=3) == 5
    assert list(client.stream(POOL, "count", n=3)) == [0, 1, 2]


def test_a_stream_deadline_is_a_timeout(client: Client):
    items = []
    started = time.monotonic()
    with pytest.raises(GatewayError) as info:
        for item in client.stream(POOL, "count", n=1000, delay_ms=100, timeout=0.5):
            items.append(item)
    assert info.value.kind == "timeout"
    assert 0 < len(items) < 20 and items == list(range(len(items)))
    assert time.monotonic() - started < 5


# --- sessions ------------------------------------------------------------------------------------

def test_sessions_keep_state_between_calls(client: Client):
    with client.session(POOL) as session:
        assert session
        assert client.call(POOL, "session_put", key="k", value=[1, "two"], session=session) == 1
        assert client.call(POOL, "session_get", key="k", session=session) == [1, "two"]
        other = client.open_session(POOL)
        assert other != session
        assert client.call(POOL, "session_get", key="k", session=other) is None
        assert client.close_session(POOL, other) is True
    assert client.close_session(POOL, session) is False  # closed at the end of the block


def test_a_session_can_be_named(client: Client):
    name = f"named-{uuid.uuid4().hex[:8]}"
    assert client.open_session(POOL, name) == name
    try:
        assert client.call(POOL, "session_info", session=name)["session_id"] == name
    finally:
        assert client.close_session(POOL, name) is True


def test_calls_need_their_session_open(client: Client):
    with pytest.raises(GatewayError) as info:
        client.call(POOL, "session_get", key="k", session=f"never-opened-{uuid.uuid4().hex[:8]}")
    assert info.value.kind == "session_unknown"


# --- pools and status ----------------------------------------------------------------------------

def test_pools_lists_the_pool(tree: Tree, client: Client):
    tree.wait_ready(client)  # the timeout tests' workers may still be being replaced
    (pool,) = client.pools()
    assert pool["name"] == POOL and pool["state"] == "ready"
    assert pool["size"] == 2 and pool["ready"] == 2 and pool["queued"] == 0
    assert 0 <= pool["busy"] <= 2
    assert set(pool) == {"name", "state", "size", "ready", "busy", "queued", "profile", "adapter", "tools"}


def test_pools_lists_the_profile_adapter_and_tools(client: Client):
    (pool,) = client.pools()
    assert pool["profile"] == "process"
    assert pool["adapter"].endswith("ShowcaseAdapter")
    tools = {spec["name"]: spec for spec in pool["tools"]}
    assert {"add", "echo", "count", "session_put"} <= set(tools)
    assert [(p["name"], p["type"], p["required"]) for p in tools["add"]["parameters"]] == [
        ("a", "float", True), ("b", "float", True)]
    assert tools["count"]["streaming"] is True and tools["add"]["streaming"] is False
    assert tools["add"]["idempotent"] is False
    delay = {p["name"]: p for p in tools["count"]["parameters"]}["delay_ms"]
    assert delay["required"] is False and delay["default"] == 0


def test_status_is_the_status_document(client: Client):
    everything = client.status()
    assert isinstance(everything, dict)
    assert POOL in str(everything)
    one = client.status(POOL)
    assert isinstance(one, dict) and POOL in str(one)
    with pytest.raises(GatewayError) as info:
        client.status("no_such_pool")
    assert "no_such_pool" in info.value.message


# --- the asyncio client --------------------------------------------------------------------------

def test_async_client(tree: Tree):
    async def main() -> None:
        async with AsyncClient(tree.address, timeout=30) as client:
            assert await client.call(POOL, "add", a=20, b=22) == 42
            assert await client.call_with(POOL, "echo", {"value": b"\x00\xff"}) == b"\x00\xff"
            many = await asyncio.gather(*(client.call(POOL, "add", a=i, b=i) for i in range(20)))
            assert many == [2 * i for i in range(20)]
            with pytest.raises(GatewayError) as info:
                await client.call(POOL, "fail", message="async boom")
            assert info.value.kind == "python_exception" and "async boom" in info.value.message
            with pytest.raises(GatewayError) as info:
                await client.call(POOL, "sleep", seconds=10, timeout=0.5)
            assert info.value.kind == "timeout"
            outcomes = await client.map(POOL, "add", [{"a": 1, "b": 2}, {"a": 1}, {"a": 3, "b": 4}])
            assert outcomes[0] == 3 and isinstance(outcomes[1], GatewayError) and outcomes[2] == 7

            stream = client.stream(POOL, "count", n=5)
            assert [item async for item in stream] == [0, 1, 2, 3, 4]
            assert stream.summary is not None and stream.summary.items == 5

            async with client.session(POOL) as session:
                assert await client.call(POOL, "session_put", key="a", value=1, session=session) == 1
                assert await client.call(POOL, "session_get", key="a", session=session) == 1
                correlation_id = f"async-{uuid.uuid4().hex}"
                async with client.stream(POOL, "tracked", n=100000, delay_ms=10, session=session,
                                         correlation_id=correlation_id) as early:
                    async for item in early:
                        if item == 2:
                            break
                deadline = time.monotonic() + 10
                entry = None
                while entry is None and time.monotonic() < deadline:
                    log = await client.call(POOL, "stream_closed_log", session=session)
                    entry = next((e for e in log if e["correlation_id"] == correlation_id), None)
                    await asyncio.sleep(0.05)
                assert entry is not None and entry["how"] == "closed"
            assert await client.close_session(POOL, session) is False

            (pool,) = await client.pools()
            assert pool["name"] == POOL
            assert isinstance(await client.status(POOL), dict)

    asyncio.run(main())


# --- connecting ----------------------------------------------------------------------------------

def test_connect_reads_the_address_from_the_environment(tree: Tree, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SNAKEPIT_GATEWAY", tree.address)
    with connect(timeout=30) as client:
        assert client.address == tree.address
        assert client.call(POOL, "add", a=1, b=2) == 3


def test_connect_without_an_address_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SNAKEPIT_GATEWAY", raising=False)
    with pytest.raises(ValueError, match="SNAKEPIT_GATEWAY"):
        connect()


def test_nothing_listening_is_unavailable_at_once(tmp_path: Path):
    started = time.monotonic()
    with Client(f"unix:{tmp_path}/none.sock", timeout=30) as client:
        with pytest.raises(GatewayError) as info:
            client.call(POOL, "add", a=1, b=2)
    assert info.value.kind == "unavailable"
    assert time.monotonic() - started < 5


def test_a_stopped_tree_is_unavailable_without_a_hang():
    own = Tree(TREE)  # its own tree: stopping it leaves the module's alone
    try:
        client = Client(own.address, timeout=30)
        own.wait_ready(client)
        assert client.call(POOL, "add", a=1, b=2) == 3
        # A stream running when the tree stops ends with a typed failure (pool_stopped, once the
        # pool's shutdown grace is over), not a hang.
        running = client.stream(POOL, "count", n=100000, delay_ms=50)
        assert next(running) == 0
        log = own.log()
        code = own.stop()
        assert code == 0, f"snakepit run exited with {code}; log:\n{log}"
        with pytest.raises(GatewayError) as info:
            list(running)
        assert info.value.kind in ("pool_stopped", "unavailable"), info.value
        for call in (lambda: client.call(POOL, "add", a=1, b=2), lambda: list(client.stream(POOL, "count", n=3)),
                     client.pools):
            started = time.monotonic()
            with pytest.raises(GatewayError) as info:
                call()
            assert info.value.kind == "unavailable"
            assert time.monotonic() - started < 5
        client.close()
    finally:
        own.kill()


# --- token, limits and TLS ------------------------------------------------------------------------

def tree_with_gateway(directory: Path, gateway: str) -> Path:
    """examples/one_pool.toml with a [gateway] section, in ``directory``."""
    path = directory / "tree.toml"
    path.write_text(f"{TREE.read_text()}\n[gateway]\n{gateway}")
    return path


def admitted(call: Any) -> Any:
    """``call()``, retried while the gateway refuses it with kind "limit". With max_calls = 1 the
    gateway sometimes still counts the call answered just before (its slot is released after the
    reply is sent), so a call right after another can be refused."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return call()
        except GatewayError as exc:
            if exc.kind != "limit" or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def test_a_token_and_the_call_limit(tmp_path: Path):
    secret = uuid.uuid4().hex
    token_file = tmp_path / "token"
    token_file.write_text(f"{secret}\n")
    token_file.chmod(0o600)
    own = Tree(tree_with_gateway(tmp_path, 'token_file = "token"\nmax_calls = 1\n'))
    try:
        with Client(own.address, token_file=str(token_file), timeout=30) as client:
            own.wait_ready(client)
            assert admitted(lambda: client.call(POOL, "add", a=1, b=2)) == 3

            # Without the token, or with another one, every operation is refused, as a whole.
            for other in (Client(own.address, timeout=30), Client(own.address, token="wrong", timeout=30)):
                with other:
                    for call in (lambda: other.call(POOL, "add", a=1, b=2),
                                 lambda: other.map(POOL, "add", [{"a": 1, "b": 2}]),
                                 lambda: list(other.stream(POOL, "count", n=2)),
                                 lambda: other.open_session(POOL), other.pools, other.status):
                        with pytest.raises(GatewayError) as info:
                            call()
                        assert info.value.kind == "unauthenticated", info.value
            with Client(own.address, token=secret, timeout=30) as same:
                assert admitted(lambda: same.call(POOL, "add", a=2, b=2)) == 4

            # max_calls = 1: a second call while one runs is refused, naming the key.
            slow = threading.Thread(target=admitted, args=(lambda: client.call(POOL, "sleep", seconds=1.5),))
            slow.start()
            try:
                time.sleep(0.5)
                with pytest.raises(GatewayError) as info:
                    client.call(POOL, "add", a=1, b=2)
                assert info.value.kind == "limit" and "max_calls" in info.value.message
                assert info.value.code is not None and info.value.code.name == "RESOURCE_EXHAUSTED"
            finally:
                slow.join(timeout=30)
            assert admitted(lambda: client.call(POOL, "add", a=1, b=2)) == 3
        assert own.stop() == 0
    finally:
        own.kill()


def make_certificates(directory: Path) -> Dict[str, bytes]:
    """The committed test-only TLS material (tests/cli/tls: a CA, a server certificate for
    localhost/127.0.0.1 and a client certificate it signed), copied into ``directory`` (the tree
    file names them relative to itself); returns their contents by name. Committed rather than
    made here, so the test runs where no openssl command is installed."""
    source = Path(__file__).resolve().parents[1] / "cli" / "tls"
    for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key"):
        shutil.copy(source / name, directory / name)
        (directory / name).chmod(0o600)
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.suffix in (".pem", ".key")}


def test_tls_with_client_certificates(tmp_path: Path):
    pem = make_certificates(tmp_path)
    own = Tree(tree_with_gateway(tmp_path, 'listen = "127.0.0.1:0"\ntls_cert = "server.pem"\n'
                                           'tls_key = "server.key"\ntls_client_ca = "ca.pem"\n'))
    try:
        host, port = own.address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        tls = dict(root_certificates=pem["ca.pem"], timeout=30)
        with Client(own.address, private_key=pem["client.key"], certificate_chain=pem["client.pem"], **tls) as client:
            own.wait_ready(client)
            assert client.call(POOL, "echo", value=b"over TLS") == b"over TLS"

            async def over_tls() -> Any:
                async with AsyncClient(own.address, private_key=pem["client.key"],
                                       certificate_chain=pem["client.pem"], **tls) as aclient:
                    return await aclient.call(POOL, "add", a=1, b=2)

            assert asyncio.run(over_tls()) == 3
        # Plain text, or TLS without a client certificate: no connection.
        for other in (Client(own.address, timeout=10), Client(own.address, **tls)):
            with other, pytest.raises(GatewayError) as info:
                other.call(POOL, "add", a=1, b=2)
            assert info.value.kind == "unavailable", info.value
        assert own.stop() == 0
    finally:
        own.kill()


def test_gateway_errors_pickle_with_their_fields():
    import grpc
    import pickle

    error = pickle.loads(pickle.dumps(GatewayError("python_exception", "no", "KeyError", "Traceback ...")))
    assert (error.kind, error.message, error.python_type, error.traceback, error.code) == (
        "python_exception", "no", "KeyError", "Traceback ...", None)
    error = pickle.loads(pickle.dumps(GatewayError("limit", "max_calls", code=grpc.StatusCode.RESOURCE_EXHAUSTED)))
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and str(error) == "[limit] max_calls"


# --- the guide's example -------------------------------------------------------------------------

def test_the_guides_example_runs(tree: Tree, monkeypatch: pytest.MonkeyPatch):
    text = (ROOT / "docs" / "python-client.md").read_text()
    marker = "<!-- example: python-client "
    assert marker in text
    block = re.search(r"```python\n(.*?)```", text[text.index(marker):], re.S)
    assert block, "no python block after the example marker"
    monkeypatch.setenv("SNAKEPIT_GATEWAY", tree.address)
    exec(compile(block.group(1), "docs/python-client.md", "exec"), {"__name__": "docs_example"})
