"""Partitions: a node and a tree that uses its pool run in two Linux network namespaces joined by
a veth pair; the link is cut by dropping every packet on both ends (no RST, no FIN: the TCP
connection stays open, as in a real partition), then healed.

What it shows, with real processes: a call open on the far node when the link goes fails with a
typed `node_down` within the heartbeat timeout and a margin; the remote child restarts (a
reconnect) while the link is down and the user's tree keeps answering; once the link is back the
pool answers again within a bounded time; both trees stop cleanly on SIGTERM. Two known faults
found this way are kept as expected failures (see their docstrings).

Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and `ip`/`tc` from iproute2; skipped otherwise.
Traffic only goes to loopback and to the two addresses inside the namespaces made here."""

import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

SNAKEPIT = os.environ.get("SNAKEPIT_BIN", "snakepit")

# A /30 of 10.0.0.0/8 that exists only inside the two namespaces made below.
NODE_ADDR = "10.251.37.1"
USER_ADDR = "10.251.37.2"
NODE_PORT = 4710  # the namespace is new: nothing else listens there

HEARTBEAT_INTERVAL_MS = 200
HEARTBEAT_TIMEOUT_MS = 1000
# As docs/nodes.md: 10 s, no shorter than the lookup `connect_pool` waits for (10 s, not
# configurable from a tree), so a reconnect blocked by the partition is never abandoned half way
# (see test_a_reconnect_abandoned_by_its_connect_timeout_does_not_leave_a_dead_pool).
CONNECT_TIMEOUT_MS = 10000
# node_down must come within the heartbeat timeout, one interval and a margin.
DETECTION_BOUND_S = (HEARTBEAT_TIMEOUT_MS + HEARTBEAT_INTERVAL_MS) / 1000 + 2.0
SLOW_CALL_S = 4  # longer than DETECTION_BOUND_S: only the partition can end it that early
# After the heal the pool must answer again within this (TCP's retransmission back-off, the
# supervisor's restart back-off and one connect).
HEAL_BOUND_S = 10

NODE_TREE = f"""
[supervisors.app]
strategy = "one_for_one"
children = ["showcase"]

[pools.showcase]
adapter = "snakepit_bridge.showcase.ShowcaseAdapter"
size = 2

[node]
name = "far-node"
listen = "{NODE_ADDR}:{NODE_PORT}"
insecure = true
export = ["showcase"]
"""


def user_tree(connect_timeout_ms: int = CONNECT_TIMEOUT_MS) -> str:
    return f"""
[supervisors.app]
strategy = "one_for_one"
children = ["far"]
max_restarts = 100
max_seconds = 60
restart_backoff_min_ms = 200
restart_backoff_max_ms = 500

[remote_pools.far]
node = "{NODE_ADDR}:{NODE_PORT}"
pool = "showcase"
heartbeat_interval_ms = {HEARTBEAT_INTERVAL_MS}
heartbeat_timeout_ms = {HEARTBEAT_TIMEOUT_MS}
connect_timeout_ms = {connect_timeout_ms}
"""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")
    return proc


class Netns:
    """Two namespaces `a` (the node) and `b` (the user's tree) joined by a veth pair."""

    def __init__(self) -> None:
        pid = os.getpid()
        self.a, self.b = f"sp-{pid}-a", f"sp-{pid}-b"
        self.veth_a, self.veth_b = f"spv{pid}a", f"spv{pid}b"  # at most 15 characters
        self.made: list = []
        self.drop_qdisc: list = []
        self.partitioned = False

    def exec_argv(self, ns: str, *argv: str) -> list:
        # nsenter enters the network namespace only; `ip netns exec` and `ip -n` also remount
        # / and /sys in a new mount namespace, which fails where / is no mount point (a chroot).
        return ["nsenter", f"--net=/run/netns/{ns}", *argv]

    def setup(self) -> None:
        for ns in (self.a, self.b):
            proc = sh("ip", "netns", "add", ns, check=False)
            if proc.returncode != 0:
                raise PermissionError(f"`ip netns add {ns}` failed: {proc.stderr.strip()}")
            self.made.append(ns)
        proc = sh("ip", "link", "add", self.veth_a, "type", "veth", "peer", "name", self.veth_b,
                  check=False)
        if proc.returncode != 0:
            raise PermissionError(f"cannot make a veth pair: {proc.stderr.strip()}")
        try:
            sh("ip", "link", "set", self.veth_a, "netns", self.a)
            sh("ip", "link", "set", self.veth_b, "netns", self.b)
        except AssertionError:
            sh("ip", "link", "del", self.veth_a, check=False)
            raise
        for ns, dev, addr in ((self.a, self.veth_a, NODE_ADDR), (self.b, self.veth_b, USER_ADDR)):
            sh(*self.exec_argv(ns, "ip", "addr", "add", f"{addr}/30", "dev", dev))
            sh(*self.exec_argv(ns, "ip", "link", "set", dev, "up"))
            sh(*self.exec_argv(ns, "ip", "link", "set", "lo", "up"))

    def choose_drop_qdisc(self) -> str:
        """A qdisc that drops every outgoing packet: netem loss 100% where the kernel has netem,
        else the blackhole qdisc (always built with traffic control). Neither sends a RST."""
        for qdisc in (["netem", "loss", "100%"], ["blackhole"]):
            proc = sh(*self.exec_argv(self.a, "tc", "qdisc", "add", "dev", self.veth_a, "root",
                                      *qdisc), check=False)
            if proc.returncode == 0:
                sh(*self.exec_argv(self.a, "tc", "qdisc", "del", "dev", self.veth_a, "root"))
                self.drop_qdisc = qdisc
                return " ".join(qdisc)
        return ""

    def partition(self) -> None:
        for ns, dev in ((self.a, self.veth_a), (self.b, self.veth_b)):
            sh(*self.exec_argv(ns, "tc", "qdisc", "add", "dev", dev, "root", *self.drop_qdisc))
        self.partitioned = True

    def heal(self) -> None:
        for ns, dev in ((self.a, self.veth_a), (self.b, self.veth_b)):
            sh(*self.exec_argv(ns, "tc", "qdisc", "del", "dev", dev, "root"))
        self.partitioned = False

    def teardown(self) -> None:
        # Deleting a namespace destroys the veth end in it, and with it its peer.
        for ns in self.made:
            sh("ip", "netns", "del", ns, check=False)
        self.made = []


@pytest.fixture
def netns():
    if shutil.which("ip") is None or shutil.which("tc") is None or shutil.which("nsenter") is None:
        pytest.skip("needs `ip` and `tc` (iproute2) and `nsenter` (util-linux)")
    pair = Netns()
    try:
        pair.setup()
    except PermissionError as e:
        pair.teardown()
        pytest.skip(f"cannot make two network namespaces and a veth pair here (needs root): {e}")
    except BaseException:
        pair.teardown()
        raise
    try:
        if not pair.choose_drop_qdisc():
            pytest.skip("the kernel has neither the netem nor the blackhole qdisc")
        yield pair
    finally:
        pair.teardown()


class Run:
    """`snakepit run --print-address FILE` inside a namespace, its stderr in a file."""

    def __init__(self, netns: Netns, ns: str, path: Path, text: str) -> None:
        path.write_text(text)
        self.log_path = path.with_suffix(".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            netns.exec_argv(ns, SNAKEPIT, "run", "--print-address", str(path)),
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        # Its first line once the tree runs; a tree that never gets there must not hang the test.
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"no address from {path.name} in 30 s:\n{self.text()}")
        self.address = self.proc.stdout.readline().strip()
        assert self.address, self.text()

    def text(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, text: str, timeout: float = 20, count: int = 1) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.text().count(text) >= count:
                return time.monotonic() - start
            assert self.proc.poll() is None, f"it exited {self.proc.returncode}:\n{self.text()}"
            time.sleep(0.05)
        raise AssertionError(f"not {count} x {text!r} in the log:\n{self.text()}")

    def stop(self, timeout: float = 15) -> tuple:
        """SIGTERM, then SIGKILL after `timeout`: (exit code or "hung", seconds it took)."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
            outcome = self.proc.returncode
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            outcome = "hung"
        self.log.close()
        return outcome, time.monotonic() - start


def call_argv(address: str, tool: str, args: dict, timeout_ms: int) -> list:
    # The gateway is a unix socket: the filesystem is shared, so this runs in no namespace.
    return [SNAKEPIT, "call", "--connect", address, "--pool", "far", "--tool", tool,
            "--args", json.dumps(args), "--timeout-ms", str(timeout_ms)]


def call(address: str, tool: str, args: dict, timeout_ms: int = 10000):
    return subprocess.run(call_argv(address, tool, args, timeout_ms), capture_output=True,
                          text=True, timeout=timeout_ms / 1000 + 20)


def error_of(stderr: str) -> dict:
    lines = [l for l in stderr.splitlines() if l.startswith("{")]
    assert lines, f"no JSON error on stderr: {stderr!r}"
    return json.loads(lines[-1])["error"]


class Trees:
    """The node in namespace a, the user's tree in namespace b; `stop()` stops both with SIGTERM
    (the user's tree first) and says how each ended."""

    def __init__(self, netns: Netns, tmp_path: Path, user_text: str) -> None:
        self.netns = netns
        self.user = None
        self.node = Run(netns, netns.a, tmp_path / "node.toml", NODE_TREE)
        try:
            self.node.wait_for_log(f"listening on {NODE_ADDR}:{NODE_PORT}")
            self.node.wait_for_log("running (")  # its control endpoint (inspect) is up too
            self.user = Run(netns, netns.b, tmp_path / "user.toml", user_text)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 15) -> dict:
        if self.netns.partitioned:
            self.netns.heal()
        stopped = {"user": self.user.stop(timeout) if self.user else None,
                   "node": self.node.stop(timeout)}
        print("---- user log\n" + (self.user.text() if self.user else "")
              + "---- node log\n" + self.node.text())
        print(f"stopped (exit code, seconds): {stopped}")
        return stopped


def call_until_it_answers(address: str, bound: float) -> tuple:
    """Calls `far` until it answers 5 or `bound` seconds pass: (last call, seconds it took)."""
    start = time.monotonic()
    while True:
        proc = call(address, "add", {"a": 2, "b": 3}, timeout_ms=3000)
        if proc.returncode == 0 or time.monotonic() - start > bound:
            return proc, time.monotonic() - start
        time.sleep(0.2)


def busy_on_node(netns: Netns, node: Run) -> int:
    # inspect reaches the tree's control endpoint on the loopback of its namespace.
    proc = subprocess.run(netns.exec_argv(netns.a, SNAKEPIT, "inspect", "--pid",
                                          str(node.proc.pid), "--json"),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    pools = {p["name"]: p for p in json.loads(proc.stdout)["pools"]}
    return pools["showcase"]["busy"]



def open_a_slow_call_then_cut(trees: Trees) -> tuple:
    """Starts a call to `far` that sleeps SLOW_CALL_S on the node and, once the node runs it,
    cuts the link: (the `snakepit call` process, when the link was cut)."""
    slow = subprocess.Popen(call_argv(trees.user.address, "sleep", {"seconds": SLOW_CALL_S}, 60000),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while busy_on_node(trees.netns, trees.node) < 1:
        assert time.monotonic() < deadline, "the slow call never reached the node"
        assert slow.poll() is None, slow.communicate()
        time.sleep(0.05)
    trees.netns.partition()
    return slow, time.monotonic()


def end(proc: subprocess.Popen) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def test_a_partitioned_node_is_declared_down_and_its_pool_comes_back_when_healed(netns, tmp_path):
    trees = Trees(netns, tmp_path, user_tree())
    user, node = trees.user, trees.node
    slow = None
    try:
        # Across the link, through the user's gateway.
        proc = call(user.address, "add", {"a": 40, "b": 2})
        assert (proc.returncode, proc.stdout.strip()) == (0, "42"), proc.stderr

        # A call is running on the node when the link goes: it fails node_down, typed, once the
        # heartbeats have been missing for heartbeat_timeout.
        slow, cut = open_a_slow_call_then_cut(trees)
        try:
            out, err = slow.communicate(timeout=DETECTION_BOUND_S + 5)
        except subprocess.TimeoutExpired:
            raise AssertionError("the call open on the node hung through the partition:\n"
                                 + user.text())
        detected = time.monotonic() - cut
        assert slow.returncode == 1, (out, err)
        error = error_of(err)
        print(f"the open call failed {detected:.2f} s after the cut: {error}")
        assert error["kind"] == "node_down", error
        assert "answered no heartbeat" in error["message"], error  # not a closed connection
        assert detected < DETECTION_BOUND_S, f"node_down only {detected:.2f} s after the cut"

        # The child exits node_down and its supervisor restarts it, i.e. reconnects; that
        # reconnect cannot get through while the link is down.
        user.wait_for_log(f"child far exited (the node at {NODE_ADDR}:{NODE_PORT} running pool "
                          "'showcase' answered no heartbeat", timeout=5)
        assert "; restarting" in user.text().split("child far exited", 1)[1].splitlines()[0]
        # The user's tree keeps answering: a call to the lost pool ends at once, typed.
        start = time.monotonic()
        proc = call(user.address, "add", {"a": 1, "b": 1}, timeout_ms=3000)
        took = time.monotonic() - start
        print(f"a call during the partition: rc {proc.returncode} in {took:.2f} s: "
              f"{proc.stderr.strip()}")
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        error = error_of(proc.stderr)
        # A typed answer of the tree: the pool is being reconnected (the call did not run).
        # (Not a timeout: the call waited it out; not the gateway itself unreachable.)
        assert error["kind"] in ("unavailable", "node_down", "pool_stopped"), error
        if error["kind"] == "unavailable":
            assert "did not run" in error["message"], error
        assert took < 2.5, f"a call to the lost pool took {took:.2f} s"
        assert user.text().count("started child far") == 1, user.text()
        assert user.proc.poll() is None, user.text()
        assert node.proc.poll() is None, node.text()

        # Healed: the reconnect goes through and the pool answers again.
        netns.heal()
        proc, took = call_until_it_answers(user.address, HEAL_BOUND_S)
        assert (proc.returncode, proc.stdout.strip()) == (0, "5"), (proc.stderr, user.text())
        print(f"answering again {took:.2f} s after the heal")
        assert user.text().count("started child far") == 2, user.text()
        assert "restart_intensity_exceeded" not in user.text()
    finally:
        end(slow)
        stopped = trees.stop()
    # Both stop on SIGTERM, promptly and cleanly.
    assert stopped["user"][0] == 0, f"the user's tree after SIGTERM: {stopped['user']}"
    assert stopped["node"][0] == 0, f"the node after SIGTERM: {stopped['node']}"


def test_sigterm_while_a_call_is_open_on_a_partitioned_node_stops_the_tree(netns, tmp_path):
    """SIGTERM (Ctrl-C) while the node is unreachable and a call is open there, before the
    heartbeats have declared it down: the user's tree must still stop. It hung in the gateway's
    shutdown: the remote pool's stand-in exited without answering its open calls (it now answers
    them pool_stopped when it is stopped)."""
    trees = Trees(netns, tmp_path, user_tree())
    slow = None
    try:
        slow, _ = open_a_slow_call_then_cut(trees)
        outcome = trees.user.stop(timeout=8)
        print(f"the user's tree after SIGTERM: {outcome}; the open call: "
              f"{slow.wait(timeout=15)} {slow.stderr.read().strip()}")
    finally:
        end(slow)
        stopped = trees.stop()
    assert stopped["node"][0] == 0, f"the node after SIGTERM: {stopped['node']}"
    assert outcome[0] == 0, f"the user's tree, SIGTERM during a partition: {outcome}"


def test_a_reconnect_abandoned_by_its_connect_timeout_does_not_leave_a_dead_pool(netns, tmp_path):
    """A connect timeout shorter than the partition: each reconnect blocks on the frozen
    connection and is abandoned; after the heal the answers to all of them arrive together. The
    pool must answer again, and go on answering. (An abandoned reconnect that ended late used to
    replace the adopted one's handle in the tree's directory; now only the latest start may.)"""
    trees = Trees(netns, tmp_path, user_tree(connect_timeout_ms=1000))
    user = trees.user
    try:
        proc = call(user.address, "add", {"a": 40, "b": 2})
        assert (proc.returncode, proc.stdout.strip()) == (0, "42"), proc.stderr
        netns.partition()
        user.wait_for_log("child far exited", timeout=DETECTION_BOUND_S + 2)
        user.wait_for_log("child far failed to restart: child far did not start within 1000 ms",
                          count=3, timeout=15)
        netns.heal()
        proc, took = call_until_it_answers(user.address, 8)
        print(f"after the heal: rc {proc.returncode} in {took:.2f} s {proc.stderr.strip()}")
        assert (proc.returncode, proc.stdout.strip()) == (0, "5"), (proc.stderr, user.text())
        # The late answers to the abandoned reconnects came with it: it must go on answering.
        for _ in range(5):
            time.sleep(0.2)
            proc = call(user.address, "add", {"a": 2, "b": 3}, timeout_ms=3000)
            assert (proc.returncode, proc.stdout.strip()) == (0, "5"), (proc.stderr, user.text())
        assert "restart_intensity_exceeded" not in user.text()
    finally:
        stopped = trees.stop()
    assert stopped["user"][0] == 0 and stopped["node"][0] == 0, stopped
