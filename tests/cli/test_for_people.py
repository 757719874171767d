"""What the command line shows a person: on a terminal (a pty here) readable errors and progress;
in a pipe JSON errors and no progress; `call --repeat` summaries, also after Ctrl-C."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import time

SNAKEPIT = os.environ.get("SNAKEPIT_BIN", "snakepit")
SUMMARY = re.compile(r"(\d+)(?: of (\d+))? calls, (\d+) in flight, (\d+) failed(?: \((.*?)\))?, [\d.]+ s, "
                     r"\d+ calls/s, latency p50 ([\d.]+) ms p99 ([\d.]+) ms")


def on_terminal(*args: str, timeout: float = 120) -> tuple[int, str]:
    """Runs snakepit with stdout and stderr on a pseudo-terminal: (exit code, all it wrote)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdio is the pty
        os.execv(SNAKEPIT, [SNAKEPIT, *args])
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


def test_a_start_up_failure_on_a_terminal_is_one_readable_error_with_the_traceback(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('the model file is missing')\n")
    code, out = on_terminal("call", "--adapter", "broken.Adapter", "--python-path", str(tmp_path),
                            "--tool", "noop")
    assert code == 1, out
    assert '{"error"' not in out and "\\n" not in out, out
    assert out.count("snakepit: error: startup_failed: ") == 1, out
    # The traceback as Python prints it, one frame per line, ending with the exception.
    assert "Traceback (most recent call last):\r\n" in out, out
    assert out.endswith("RuntimeError: the model file is missing\r\n"), out
    # Once: not again as the worker's warning and the pool's error log lines.
    assert "could not start: " not in out and "pool failed: " not in out, out
    # In a pipe (a program reads it): one JSON error, as before.
    piped = subprocess.run([SNAKEPIT, "call", "--adapter", "broken.Adapter", "--python-path", str(tmp_path),
                            "--tool", "noop"], capture_output=True, text=True, timeout=120)
    assert piped.returncode == 1
    error = json.loads(piped.stderr.strip().splitlines()[-1])["error"]
    assert error["kind"] == "startup_failed" and "Traceback" in error["traceback"]
    # --json asks for JSON on a terminal too.
    code, out = on_terminal("call", "--json", "--adapter", "broken.Adapter", "--python-path", str(tmp_path),
                            "--tool", "noop")
    assert code == 1 and '{"error":{"kind":"startup_failed"' in out, out


def test_repeat_summarises_latency_and_failures_by_kind():
    proc = subprocess.run([SNAKEPIT, "call", "--tool", "sleep", "--args", '{"seconds": 0.3}', "--timeout-ms", "100",
                           "--repeat", "4", "--concurrency", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    found = SUMMARY.search(proc.stderr)
    assert found, proc.stderr
    assert found.group(1) == "4" and found.group(4) == "4" and found.group(5) == "timeout: 4", proc.stderr
    assert float(found.group(6)) >= 90 and float(found.group(7)) >= float(found.group(6))
    assert "\r" not in proc.stderr  # no progress line in a pipe


def test_repeat_draws_a_progress_line_on_a_terminal():
    code, out = on_terminal("call", "--tool", "sleep", "--args", '{"seconds": 0.05}', "--repeat", "40",
                            "--concurrency", "2")
    assert code == 0, out
    assert re.search(r"\rsnakepit: \d+/40 calls, 0 failed, \d+ calls/s", out), out
    assert SUMMARY.search(out), out


def test_ctrl_c_during_repeat_still_prints_the_summary_of_what_finished():
    proc = subprocess.Popen([SNAKEPIT, "call", "--tool", "sleep", "--args", '{"seconds": 0.05}',
                             "--repeat", "100000", "--concurrency", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(5):  # some calls finished (each prints the time it slept)
            assert float(proc.stdout.readline()) >= 0.05
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    found = SUMMARY.search(err)
    assert found and found.group(2) == "100000", err
    assert 5 <= int(found.group(1)) < 100000
    assert "interrupted" in err


def test_inspect_of_a_closed_port_says_why_in_words():
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run([SNAKEPIT, "inspect", "--url", f"http://127.0.0.1:{port}"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    message = json.loads(done.stderr.strip().splitlines()[-1])["error"]["message"]
    assert message == (f"cannot reach http://127.0.0.1:{port}/status: the connection was refused or failed: "
                       "nothing listens there (is the tree running, and are the host and port right?)")


def test_a_tree_that_fails_to_start_on_a_terminal_says_so_once(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('the model file is missing')\n")
    tree = tmp_path / "tree.toml"
    tree.write_text(f'[supervisors.app]\nchildren = ["ml"]\n\n[pools.ml]\nadapter = "broken.Adapter"\n'
                    f'python_path = ["{tmp_path}"]\nsize = 1\n')
    code, out = on_terminal("run", str(tree))
    assert code == 1, out
    assert out.count("snakepit: error: startup_failed: ") == 1, out
    assert out.endswith("RuntimeError: the model file is missing\r\n"), out
    assert "could not start: " not in out and "pool failed: " not in out, out
