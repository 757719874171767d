"""The crash barrier from the command line: `snakepit call --idempotent` retries a call whose
worker crashed, and `--timings` says how many attempts ran."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

SNAKEPIT = os.environ.get("SNAKEPIT_BIN", "snakepit")
ADAPTERS = Path(os.environ.get("SNAKEPIT_SOURCE_DIR", Path(__file__).parents[2])) / "tests" / "integration" / "adapters"


def call(tool: str, args: dict, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEPIT, "call", "--adapter", "flaky_adapter.FlakyAdapter", "--python-path",
                           str(ADAPTERS), "--workers", "2", "--tool", tool, "--args", json.dumps(args), *flags],
                          capture_output=True, text=True, timeout=120)


def test_an_idempotent_call_is_retried_and_the_attempts_are_printed(tmp_path: Path):
    marker = tmp_path / f"crashed-{uuid.uuid4().hex}"
    proc = call("crash_once_plain", {"marker": str(marker)}, "--idempotent", "--timings")
    assert proc.returncode == 0, proc.stderr
    reply = json.loads(proc.stdout)
    assert reply["attempts"] == 2
    assert reply["result"].startswith("ok from ")
    assert marker.exists()


def test_without_idempotent_the_crash_is_the_answer(tmp_path: Path):
    proc = call("crash_once_plain", {"marker": str(tmp_path / "m")}, "--timings")
    assert proc.returncode == 1
    error = json.loads([line for line in proc.stderr.splitlines() if line.startswith("{")][-1])["error"]
    assert error["kind"] == "worker_crashed"


def test_a_call_that_did_not_crash_took_one_attempt():
    proc = call("add", {"a": 1, "b": 2}, "--timings")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["attempts"] == 1
