"""Nodes: a tree whose pool runs on another node (`[remote_pools.NAME]`), called through its own
gateway; the other node killed and brought back on the same port."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

SNAKEPIT = os.environ.get("SNAKEPIT_BIN", "snakepit")

SHOWCASE = """
[supervisors.app]
strategy = "one_for_one"
children = ["showcase"]

[pools.showcase]
adapter = "snakepit_bridge.showcase.ShowcaseAdapter"
size = 2
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Run:
    """`snakepit run --print-address FILE`, its stderr collected in a file."""

    def __init__(self, path: Path, text: str) -> None:
        path.write_text(text)
        self.log_path = path.with_suffix(".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([SNAKEPIT, "run", "--print-address", str(path)],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.address = self.proc.stdout.readline().strip()
        assert self.address, self.log_path.read_text()

    def wait_for_log(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_path.read_text():
                return
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} in the log:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        self.log.close()
        return self.proc.returncode


def call(address: str, pool: str, tool: str, args: dict, timeout_ms: int = 10000):
    return subprocess.run([SNAKEPIT, "call", "--connect", address, "--pool", pool, "--tool", tool,
                           "--args", json.dumps(args), "--timeout-ms", str(timeout_ms)],
                          capture_output=True, text=True, timeout=60)


def user_tree(port: int) -> str:
    return f"""
[supervisors.app]
strategy = "one_for_one"
children = ["far"]
max_restarts = 100
max_seconds = 60
restart_backoff_min_ms = 200
restart_backoff_max_ms = 500

[remote_pools.far]
node = "127.0.0.1:{port}"
pool = "showcase"
heartbeat_interval_ms = 200
heartbeat_timeout_ms = 1000
connect_timeout_ms = 3000
"""


def test_a_remote_pool_in_a_tree_is_called_through_its_gateway_and_reconnects(tmp_path):
    port = free_port()
    node_table = f'\n[node]\nname = "left"\nlisten = "127.0.0.1:{port}"\nexport = ["showcase"]\n'
    left = Run(tmp_path / "left.toml", SHOWCASE + node_table)
    right = None
    try:
        left.wait_for_log(f"node 'left' listening on 127.0.0.1:{port}")
        right = Run(tmp_path / "right.toml", user_tree(port))
        proc = call(right.address, "far", "add", {"a": 40, "b": 2})
        assert (proc.returncode, proc.stdout.strip()) == (0, "42"), proc.stderr
        # inspect shows it under its name here, with the node it runs on and its workers there.
        proc = subprocess.run([SNAKEPIT, "inspect", "--pid", str(right.proc.pid), "--json"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        pools = {p["name"]: p for p in json.loads(proc.stdout)["pools"]}
        assert pools["far"]["node"] == f"127.0.0.1:{port}"
        assert pools["far"]["size"] == 2 and len(pools["far"]["workers"]) == 2
        text = subprocess.run([SNAKEPIT, "inspect", "--pid", str(right.proc.pid)],
                              capture_output=True, text=True, timeout=60).stdout
        assert f"pool far (on node 127.0.0.1:{port})" in text, text
        proc = call(right.address, "far", "fail", {"exception": "KeyError"})
        error = json.loads([l for l in proc.stderr.splitlines() if l.startswith("{")][-1])["error"]
        assert (error["kind"], error["python_type"]) == ("python_exception", "KeyError")

        # The node goes: the remote child fails, its supervisor keeps reconnecting.
        assert left.stop(signal.SIGKILL) == -signal.SIGKILL
        time.sleep(1.5)
        proc = call(right.address, "far", "add", {"a": 1, "b": 1}, timeout_ms=3000)
        assert proc.returncode == 1
        assert right.proc.poll() is None, "the user's tree must survive its remote pool's node"

        # It comes back on the same port: the next reconnect takes, calls work again.
        left = Run(tmp_path / "left2.toml", SHOWCASE + node_table)
        left.wait_for_log(f"node 'left' listening on 127.0.0.1:{port}")
        deadline = time.monotonic() + 20
        while True:
            proc = call(right.address, "far", "add", {"a": 2, "b": 3}, timeout_ms=3000)
            if proc.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert (proc.returncode, proc.stdout.strip()) == (0, "5"), proc.stderr
    finally:
        if right is not None:
            assert right.stop() == 0, right.log_path.read_text()
        left.stop()


def test_node_configuration_errors_stop_before_anything_runs(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(SHOWCASE + '\n[node]\nexport = ["nope"]\n')
    proc = subprocess.run([SNAKEPIT, "check", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "exports 'nope', which is not a pool of this tree" in (proc.stdout + proc.stderr)
    open_to_all = tmp_path / "open.toml"
    open_to_all.write_text(SHOWCASE + '\n[node]\nlisten = "0.0.0.0:0"\nexport = ["showcase"]\n')
    proc = subprocess.run([SNAKEPIT, "run", str(open_to_all)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "insecure = true" in proc.stderr, proc.stderr


def test_a_node_survives_garbage_on_its_port(tmp_path):
    port = free_port()
    node_table = f'\n[node]\nlisten = "127.0.0.1:{port}"\nexport = ["showcase"]\n'
    left = Run(tmp_path / "left.toml", SHOWCASE + node_table)
    right = None
    try:
        left.wait_for_log(f"listening on 127.0.0.1:{port}")
        for junk in (b"\x00" * 64, os.urandom(4096), b"GET / HTTP/1.1\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(junk)
        assert left.proc.poll() is None, left.log_path.read_text()
        right = Run(tmp_path / "right.toml", user_tree(port))
        proc = call(right.address, "far", "add", {"a": 40, "b": 2})
        assert (proc.returncode, proc.stdout.strip()) == (0, "42"), proc.stderr
    finally:
        if right is not None:
            right.stop()
        assert left.stop() == 0, left.log_path.read_text()


TLS = Path(__file__).resolve().parent / "tls"


def private_tls(directory: Path) -> Path:
    """A copy of the test certificates where only we can write, keys mode 0600."""
    target = directory / "tls"
    target.mkdir(mode=0o700)
    for source in TLS.iterdir():
        (target / source.name).write_bytes(source.read_bytes())
        (target / source.name).chmod(0o600 if source.suffix == ".key" else 0o644)
    return target


def tls_table(tls: Path, name: str, ca: str = "node_ca.pem", extra: str = "") -> str:
    return (f'\n[node]\n{extra}tls_cert = "{tls / (name + ".pem")}"\ntls_key = "{tls / (name + ".key")}"\n'
            f'tls_ca = "{tls / ca}"\n')


def run_to_exit(path: Path, text: str) -> subprocess.CompletedProcess:
    path.write_text(text)
    return subprocess.run([SNAKEPIT, "run", str(path)], capture_output=True, text=True, timeout=60)


def test_nodes_with_tls_authenticate_each_other_and_refuse_strangers(tmp_path):
    tls = private_tls(tmp_path)
    port = free_port()
    left = Run(tmp_path / "left.toml", SHOWCASE + tls_table(
        tls, "node_a", extra=f'listen = "127.0.0.1:{port}"\nexport = ["showcase"]\n'))
    right = None
    try:
        left.wait_for_log(f"listening on 127.0.0.1:{port} with TLS")
        # A member of the cluster (its certificate signed by the cluster's CA) calls.
        right = Run(tmp_path / "right.toml", user_tree(port) + tls_table(tls, "node_b"))
        proc = call(right.address, "far", "add", {"a": 40, "b": 2})
        assert (proc.returncode, proc.stdout.strip()) == (0, "42"), proc.stderr
        # Refused, each before anything runs: a certificate no cluster CA signed (same CN);
        # a node that does not trust the cluster's CA; a node in plain text.
        for case, table in (("rogue", tls_table(tls, "rogue")),
                            ("distrust", tls_table(tls, "node_b", ca="rogue.pem")),
                            ("plain", "")):
            proc = run_to_exit(tmp_path / f"{case}.toml", user_tree(port) + table)
            assert proc.returncode == 1, (case, proc.stderr)
            assert "closed the connection during the handshake" in proc.stderr, (case, proc.stderr)
            proc = call(right.address, "far", "add", {"a": 1, "b": 2})
            assert (proc.returncode, proc.stdout.strip()) == (0, "3"), (case, proc.stderr)
        # Bytes that are no TLS at all: refused, and the members' connection stays up (CAF
        # 0.17 alone dropped every TLS connection of a node after one failed handshake).
        for junk in (b"\x00" * 64, os.urandom(4096), b"GET / HTTP/1.1\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(junk)
            proc = call(right.address, "far", "add", {"a": 1, "b": 2})
            assert (proc.returncode, proc.stdout.strip()) == (0, "3"), proc.stderr
        assert left.proc.poll() is None, left.log_path.read_text()
        assert "cannot guard" not in left.log_path.read_text()
    finally:
        if right is not None:
            assert right.stop() == 0, right.log_path.read_text()
        assert left.stop() == 0, left.log_path.read_text()


def test_node_tls_files_are_checked_before_anything_runs(tmp_path):
    tls = private_tls(tmp_path)
    listen = 'listen = "127.0.0.1:0"\nexport = ["showcase"]\n'
    # Only some of the three.
    proc = run_to_exit(tmp_path / "part.toml", SHOWCASE + f'\n[node]\ntls_cert = "{tls / "node_a.pem"}"\n')
    assert proc.returncode != 0 and "tls_cert, tls_key and tls_ca together" in proc.stderr, proc.stderr
    # A key others can read.
    (tls / "node_a.key").chmod(0o644)
    proc = run_to_exit(tmp_path / "open.toml", SHOWCASE + tls_table(tls, "node_a", extra=listen))
    assert proc.returncode == 1 and "chmod 600" in proc.stderr, proc.stderr
    (tls / "node_a.key").chmod(0o600)
    # The key of another certificate.
    text = SHOWCASE + tls_table(tls, "node_a", extra=listen).replace("node_a.key", "node_b.key")
    proc = run_to_exit(tmp_path / "mismatch.toml", text)
    assert proc.returncode == 1 and "is not the key of the certificate" in proc.stderr, proc.stderr
    # A certificate for serving only: a node also connects with it.
    text = SHOWCASE + tls_table(tls, "server", extra=listen)
    proc = run_to_exit(tmp_path / "server.toml", text)
    assert proc.returncode == 1 and "serverAuth, clientAuth" in proc.stderr, proc.stderr
    # Not PEM at all.
    (tls / "junk.pem").write_text("not a certificate\n")
    text = SHOWCASE + tls_table(tls, "node_a", ca="junk.pem", extra=listen)
    proc = run_to_exit(tmp_path / "junk.toml", text)
    assert proc.returncode == 1 and "holds no PEM certificate" in proc.stderr, proc.stderr


def cluster_tree(port: int) -> str:
    return f"""
[supervisors.app]
strategy = "one_for_one"
children = ["near", "far", "both"]
max_restarts = 100
max_seconds = 60
restart_backoff_min_ms = 200
restart_backoff_max_ms = 500

[pools.near]
adapter = "snakepit_bridge.showcase.ShowcaseAdapter"
size = 1

[remote_pools.far]
node = "127.0.0.1:{port}"
pool = "showcase"
heartbeat_interval_ms = 200
heartbeat_timeout_ms = 1000
connect_timeout_ms = 3000

[clusters.both]
members = ["near", "far"]
rejoin_backoff_max_ms = 500
"""


def members_of(run: Run) -> dict:
    proc = subprocess.run([SNAKEPIT, "inspect", "--pid", str(run.proc.pid), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    pools = {p["name"]: p for p in json.loads(proc.stdout)["pools"]}
    return {m["name"]: m for m in pools["both"]["members"]}


def wait_until(predicate, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_cluster_in_a_tree_spreads_survives_its_node_and_takes_it_back(tmp_path):
    port = free_port()
    node_table = f'\n[node]\nlisten = "127.0.0.1:{port}"\nexport = ["showcase"]\n'
    left = Run(tmp_path / "left.toml", SHOWCASE + node_table)
    right = None
    try:
        left.wait_for_log(f"listening on 127.0.0.1:{port}")
        right = Run(tmp_path / "right.toml", cluster_tree(port))
        wait_until(lambda: all(m["connected"] for m in members_of(right).values()))
        # Six at once on three slots: both members take some.
        calls = [subprocess.Popen([SNAKEPIT, "call", "--connect", right.address, "--pool", "both",
                                   "--tool", "sleep", "--args", '{"seconds": 0.5}'],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(6)]
        for c in calls:
            out, err = c.communicate(timeout=60)
            assert c.returncode == 0, err
        members = members_of(right)
        assert members["near"]["served"] >= 1 and members["far"]["served"] >= 1, members
        assert members["far"]["node"] == f"127.0.0.1:{port}" and members["near"]["node"] == ""
        text = subprocess.run([SNAKEPIT, "inspect", "--pid", str(right.proc.pid)],
                              capture_output=True, text=True, timeout=60).stdout
        assert "MEMBER" in text and f"127.0.0.1:{port}" in text, text

        # The node goes: the cluster serves on with its local member.
        left.stop(signal.SIGKILL)
        wait_until(lambda: not members_of(right)["far"]["connected"])
        for i in range(3):
            proc = call(right.address, "both", "add", {"a": 1, "b": 1}, timeout_ms=5000)
            assert (proc.returncode, proc.stdout.strip()) == (0, "2"), proc.stderr
        assert "cluster lost member 'far'" in right.log_path.read_text()

        # It comes back: its supervisor reconnects the child, the cluster takes it back.
        left = Run(tmp_path / "left2.toml", SHOWCASE + node_table)
        left.wait_for_log(f"listening on 127.0.0.1:{port}")
        wait_until(lambda: members_of(right)["far"]["connected"])
        assert members_of(right)["far"]["joins"] == 2
        assert "cluster member 'far' rejoined" in right.log_path.read_text()
    finally:
        if right is not None:
            assert right.stop() == 0, right.log_path.read_text()
        left.stop()
