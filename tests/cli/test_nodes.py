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
