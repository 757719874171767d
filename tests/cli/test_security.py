"""Attacks another local user could try against a snakepit host, each reproduced as such.

See docs/security.md for the threat model these tests hold snakepit to.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from test_cli import (EXAMPLES, SNAKEPIT, python_workers_of, run, runtime_dirs_in,
                      start_run)

#: An unprivileged uid ("nobody") that plays the other local user; only root can plant
#: files in its name.
OTHER_UID = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's files needs root")


@pytest.fixture
def runtime_parent():
    """A short private runtime parent (socket paths must stay under 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="sp", dir="/tmp"))
    os.chmod(path, 0o755)  # like /tmp: others may look, as the attacker would
    yield path
    shutil.rmtree(path, ignore_errors=True)


def registry_of(parent: Path) -> Path:
    return parent / f"snakepit-runs-{os.geteuid()}"


def sleeper() -> subprocess.Popen:
    """A victim process of ours, leading its own process group."""
    return subprocess.Popen(["sleep", "1000"], start_new_session=True)


def start_time(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[19])


@as_root
def test_a_registry_planted_by_another_user_kills_nothing(runtime_parent: Path):
    victim = sleeper()
    try:
        # The attacker creates the registry before the host does (under the old name
        # and the new), with a run of a "dead host" naming our victim.
        for name in ("snakepit-runs", registry_of(runtime_parent).name):
            planted = runtime_parent / name
            planted.mkdir(mode=0o755)
            run_file = planted / "1-1.run"
            run_file.write_text(f"999999 1\n+ {victim.pid} {start_time(victim.pid)}\n")
            os.chown(run_file, OTHER_UID, OTHER_UID)
            os.chown(planted, OTHER_UID, OTHER_UID)
        proc = run("call", "--tool", "noop", env={"SNAKEPIT_RUNTIME_PARENT": str(runtime_parent)})
        assert proc.returncode == 0, proc.stderr
        assert victim.poll() is None, "the planted entry's victim was killed"
        assert "refusing to use" in proc.stderr and "another local user" in proc.stderr
    finally:
        victim.kill()
        victim.wait()


def test_an_entry_for_a_process_that_is_not_our_worker_kills_nothing(runtime_parent: Path):
    # Even in our own registry, a recorded pid is killed only if it carries that run's
    # marker: here an unrelated process of ours with the right pid and start time.
    victim = sleeper()
    try:
        registry = registry_of(runtime_parent)
        registry.mkdir(mode=0o700)
        (registry / "999999-1.run").write_text(
            f"999999 1\n+ {victim.pid} {start_time(victim.pid)}\n+ 1 {start_time(1)}\n")
        proc = run("call", "--tool", "noop", env={"SNAKEPIT_RUNTIME_PARENT": str(runtime_parent)})
        assert proc.returncode == 0, proc.stderr
        assert victim.poll() is None
        assert not (registry / "999999-1.run").exists()  # a dead run's file is gone
    finally:
        victim.kill()
        victim.wait()


def plant_modules(directory: Path, marker: Path) -> None:
    """Modules a worker imports, each leaving `marker` if it ever runs."""
    code = f"open({str(marker)!r}, 'w').write('pwned')\n"
    for name in ("grpc", "google", "snakepit_bridge", "runpy", "asyncio", "json"):
        (directory / f"{name}.py").write_text(code)


def test_modules_planted_in_the_working_directory_never_run(tmp_path: Path):
    marker = tmp_path / "PWNED"
    plant_modules(tmp_path, marker)
    # `call` starts workers; `doctor` runs the interpreter probe, the worker check and
    # an adapter import.
    for args in (["call", "--tool", "add", "--args", '{"a": 1, "b": 2}'],
                 ["doctor", "--adapter", "snakepit_bridge.showcase.ShowcaseAdapter"]):
        proc = subprocess.run([SNAKEPIT, *args], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert not marker.exists(), f"planted code ran under `snakepit {args[0]}`"
    assert json.loads(run("call", "--tool", "add", "--args", '{"a": 1, "b": 2}').stdout) == 3


def test_relative_python_path_still_means_the_hosts_directory(tmp_path: Path):
    pkg = tmp_path / "adapters"
    pkg.mkdir()
    (pkg / "mine.py").write_text(
        "from snakepit_bridge import BaseAdapter, tool\n"
        "class Mine(BaseAdapter):\n"
        "    @tool\n"
        "    def where(self) -> str:\n"
        "        import os\n"
        "        return os.getcwd()\n")
    proc = subprocess.run([SNAKEPIT, "call", "--adapter", "mine.Mine", "--python-path", "adapters",
                           "--tool", "where"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == "/"  # workers run in a neutral directory


def test_doctor_passes_adapter_and_paths_as_data(tmp_path: Path):
    marker = tmp_path / "INJECTED"
    proc = run("doctor", "--adapter", f"os').system('touch {marker}') or ('x.y")
    assert not marker.exists()
    assert proc.returncode == 1 and "FAIL  adapter" in proc.stdout
    # A legitimate directory with a quote in its name works.
    quoted = tmp_path / "it's here"
    quoted.mkdir()
    (quoted / "quoted_adapter.py").write_text(
        "from snakepit_bridge import BaseAdapter\nclass Quoted(BaseAdapter):\n    pass\n")
    proc = run("doctor", "--adapter", "quoted_adapter.Quoted", "--python-path", str(quoted))
    assert "ok    adapter quoted_adapter.Quoted imports" in proc.stdout, proc.stdout


def control_of(parent: Path) -> dict:
    (control,) = registry_of(parent).glob("*.control")
    return json.loads(control.read_text())


def get(url: str, token: str, timeout: float) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as res:
        res.read()
        return res.status


def test_slow_clients_cannot_starve_the_control_endpoint(runtime_parent: Path):
    env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(runtime_parent))
    proc = start_run(EXAMPLES / "one_pool.toml", env)
    stop = threading.Event()
    try:
        control = control_of(runtime_parent)
        host, port = control["url"].removeprefix("http://").rsplit(":", 1)

        def trickle(sock: socket.socket) -> None:
            # A request head that never ends: one header line every second.
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
            while not stop.is_set():
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    return
                stop.wait(1.0)

        slow = [socket.create_connection((host, int(port))) for _ in range(4)]
        threads = [threading.Thread(target=trickle, args=(s,), daemon=True) for s in slow]
        for t in threads:
            t.start()
        time.sleep(0.5)
        for _ in range(5):  # every scrape answers promptly meanwhile
            t0 = time.monotonic()
            assert get(control["url"] + "/status", control["token"], timeout=2) == 200
            assert time.monotonic() - t0 < 1.0
        # The trickling clients are cut off once request_timeout (5 s) has passed.
        for s in slow:
            s.settimeout(8)
            data = s.recv(4096)
            assert data == b"" or data.startswith(b"HTTP/1.1 408"), data
        # One client cannot hold more than max_connections_per_client (8) connections.
        idle = [socket.create_connection((host, int(port))) for _ in range(8)]
        time.sleep(0.2)
        extra = socket.create_connection((host, int(port)))
        extra.settimeout(3)
        assert extra.recv(4096).startswith(b"HTTP/1.1 429")
        for s in idle:
            s.close()
        time.sleep(0.2)
        assert get(control["url"] + "/status", control["token"], timeout=2) == 200
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_crashed_workers_leave_no_socket_files(runtime_parent: Path):
    env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(runtime_parent))
    proc = start_run(EXAMPLES / "one_pool.toml", env)
    try:
        (runtime,) = runtime_dirs_in(runtime_parent)
        before = sorted(runtime.rglob("*.sock"))
        assert before
        for _ in range(6):
            workers = [int(line.split()[0]) for line in python_workers_of(proc.pid)]
            os.kill(workers[0], signal.SIGKILL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                now = [int(line.split()[0]) for line in python_workers_of(proc.pid)]
                if len(now) == 2 and workers[0] not in now:
                    break
                time.sleep(0.05)
        deadline = time.monotonic() + 10  # the last replacement binds its socket
        while len(after := sorted(runtime.rglob("*.sock"))) < len(before) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        after = sorted(runtime.rglob("*.sock"))
        assert len(after) == len(before), (before, after)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert runtime_dirs_in(runtime_parent) == []


def test_connections_from_many_loopback_addresses_cannot_fill_the_endpoint(runtime_parent: Path):
    # Any local user may connect from 127.0.0.2, 127.0.0.3, ...: the per-client cap does not
    # hold them, the total cap (64) would, but the longest-waiting reader is evicted for a
    # newcomer, so a real request still gets through.
    env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(runtime_parent))
    proc = start_run(EXAMPLES / "one_pool.toml", env)
    hogs = []
    try:
        control = control_of(runtime_parent)
        host, port = control["url"].removeprefix("http://").rsplit(":", 1)
        for i in range(80):
            s = socket.socket()
            s.bind((f"127.0.{i // 200}.{2 + i % 200}", 0))
            s.connect((host, int(port)))
            s.sendall(b"GET /status HTTP/1.1\r\n")  # and never more
            hogs.append(s)
        time.sleep(0.3)
        for _ in range(3):
            assert get(control["url"] + "/status", control["token"], timeout=2) == 200
    finally:
        for s in hogs:
            s.close()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def write_tree(directory: Path, metrics: str = "", pool: str = "") -> Path:
    tree = directory / "tree.toml"
    tree.write_text('[supervisors.app]\nchildren = ["p"]\n\n'
                    f'[pools.p]\nadapter = "snakepit_bridge.showcase.ShowcaseAdapter"\nsize = 1\n{pool}\n'
                    f"{metrics}")
    return tree


def test_a_metrics_token_file_guards_every_route(runtime_parent: Path, tmp_path: Path):
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    token.chmod(0o600)
    tree = write_tree(tmp_path, '[metrics]\nenabled = true\nport = 0\ntoken_file = "token"\n')
    env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(runtime_parent))
    proc = subprocess.Popen([SNAKEPIT, "run", str(tree)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    try:
        started = ""
        while "metrics at" not in started:
            line = proc.stderr.readline()
            assert line, started
            started += line
        url = started.split("metrics at ")[1].split()[0].removesuffix("/metrics")
        for route in ("/metrics", "/status", "/diagnosis"):
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(url + route, timeout=5)
            assert denied.value.code == 401
            assert get(url + route, "s3cret-token", timeout=5) == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    # A token file others can read is refused, naming the key.
    token.chmod(0o644)
    refused = run("run", str(tree), env={"SNAKEPIT_RUNTIME_PARENT": str(runtime_parent)})
    assert refused.returncode == 1
    assert "metrics.token_file" in refused.stderr and "chmod 600" in refused.stderr


def test_a_tree_files_relative_python_path_is_relative_to_the_file(tmp_path: Path,
                                                                   runtime_parent: Path):
    app = tmp_path / "app"
    (app / "adapters").mkdir(parents=True)
    (app / "adapters" / "local_adapter.py").write_text(
        "from snakepit_bridge import BaseAdapter, tool\n"
        "class Local(BaseAdapter):\n"
        "    @tool\n"
        "    def hello(self) -> str:\n"
        "        return 'from the file directory'\n")
    tree = app / "tree.toml"
    tree.write_text('[supervisors.app]\nchildren = ["p"]\n\n'
                    '[pools.p]\nadapter = "local_adapter.Local"\nsize = 1\n'
                    'python_path = ["adapters"]\n')
    # Started from elsewhere, where another user planted a look-alike.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "adapters").mkdir(parents=True)
    (elsewhere / "adapters" / "local_adapter.py").write_text("raise SystemExit('planted')\n")
    env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(runtime_parent))
    proc = subprocess.Popen([SNAKEPIT, "run", str(tree)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=elsewhere)
    try:
        from test_cli import wait_running
        wait_running(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "planted" not in err


def test_a_runtime_parent_others_may_rename_in_is_refused(tmp_path: Path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # writable by all, not sticky: anyone may swap our directory
    proc = run("call", "--tool", "noop", env={"SNAKEPIT_RUNTIME_PARENT": str(shared)})
    assert proc.returncode != 0
    assert "writable by group or others" in proc.stdout + proc.stderr


def test_a_tree_file_or_python_path_others_can_write_is_warned_about(tmp_path: Path,
                                                                    runtime_parent: Path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone may add modules here
    tree = write_tree(tmp_path, pool=f'python_path = ["{shared}"]\n')
    tree.chmod(0o666)  # and anyone may rewrite the tree
    env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(runtime_parent))
    proc = subprocess.Popen([SNAKEPIT, "run", str(tree)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        from test_cli import wait_running
        started = wait_running(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert f"warning: {tree} could be changed by another local user" in started
    assert f"python_path {shared} could be changed by another local user" in started


def test_the_endpoint_answers_hostile_requests_with_typed_http_errors(runtime_parent: Path):
    env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(runtime_parent))
    proc = start_run(EXAMPLES / "one_pool.toml", env)
    try:
        control = control_of(runtime_parent)
        host, port = control["url"].removeprefix("http://").rsplit(":", 1)

        def send(raw: bytes) -> bytes:
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(raw)
                return s.recv(4096)

        assert send(b"GET /status HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431")
        assert send(b"POST /status HTTP/1.1\r\nContent-Length: 0\r\n\r\n").startswith(b"HTTP/1.1 405")
        assert send(b"\x00\xff garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert send(b"GET /status HTTP/1.1\r\nAuthorization: Bearer wrong\r\n\r\n").startswith(b"HTTP/1.1 401")
        # And it still serves.
        assert get(control["url"] + "/status", control["token"], timeout=2) == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
