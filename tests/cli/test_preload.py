"""Preloaded pools from the command line: `snakepit call --preload`, and a tree with
`preload = true` whose host is SIGKILLed (no fork server or worker may outlive it)."""

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from test_cli import SNAKEPIT, error_of, is_running, run, wait_running

ADAPTERS = Path(os.environ.get("SNAKEPIT_SOURCE_DIR", Path(__file__).parents[2])) / "tests/integration/adapters"


def descendants(pid: int) -> dict:
    """pid -> command line of every process below `pid`."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
    children: dict = {}
    args: dict = {}
    for line in out.splitlines()[1:]:
        p, pp, cmd = line.split(None, 2)
        children.setdefault(int(pp), []).append(int(p))
        args[int(p)] = cmd
    found: dict = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = args[child]
            todo.append(child)
    return found


def children_of(pid: int) -> list:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout
    return [int(p) for p, pp in (line.split() for line in out.splitlines()[1:]) if int(pp) == pid]


def test_call_preload_runs_preload_once_in_the_fork_server():
    proc = run("call", "--preload", "--workers", "2", "--adapter", "preload_adapter.PreloadAdapter",
               "--python-path", str(ADAPTERS), "--tool", "where")
    assert proc.returncode == 0, proc.stderr
    where = json.loads(proc.stdout)
    assert where["preload_runs"] == 1
    assert where["ppid"] == where["preload_pid"] != where["pid"]
    assert where["setup_pid"] == where["pid"] == where["pgid"]


def test_call_preload_with_the_thread_profile_is_refused():
    proc = run("call", "--preload", "--profile", "thread", "--adapter",
               "snakepit_bridge.showcase.ThreadedShowcaseAdapter", "--tool", "noop")
    assert proc.returncode != 0
    assert "preload needs profile" in error_of(proc)["message"]


def test_a_failing_preload_reports_its_traceback():
    proc = run("call", "--preload", "--adapter", "preload_adapter.PreloadAdapter",
               "--python-path", str(ADAPTERS), "--tool", "where", env={"PRELOAD_FAIL": "w.bin"})
    assert proc.returncode != 0
    error = error_of(proc)
    assert error["kind"] == "startup_failed"
    assert "weights file missing: w.bin" in error["message"]
    assert "preload_adapter.py" in error.get("traceback", "")


def test_no_fork_server_or_worker_outlives_a_sigkilled_host():
    tmp_path = Path(tempfile.mkdtemp(prefix="sp", dir="/tmp"))
    tree = tmp_path / "pre.toml"
    tree.write_text(f"""
[supervisors.app]
children = ["pre"]

[pools.pre]
adapter = "preload_adapter.PreloadAdapter"
python_path = ["{ADAPTERS}"]
size = 3
preload = true
""")
    env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(tmp_path))
    proc = subprocess.Popen([SNAKEPIT, "run", str(tree)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        started = wait_running(proc)
        below = descendants(proc.pid)
        servers = [p for p, cmd in below.items()
                   if "snakepit_bridge.fork_server" in cmd and p in children_of(proc.pid)]
        assert len(servers) == 1, (started, below)
        # Python processes only: a sanitizer build may have a symbolizer of its own below.
        workers = [p for p, cmd in below.items() if p not in servers and "python" in cmd]
        assert len(workers) == 3, below  # forked: they carry the server's command line
        assert set(children_of(servers[0])) == set(workers)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 3
        ours = servers + workers
        alive = list(ours)
        while alive and time.monotonic() < deadline:
            alive = [p for p in ours if is_running(p)]
            time.sleep(0.02)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()
