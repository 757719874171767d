"""`snakepit diagnose` on a live tree under load: calls that wait are told from calls starved of CPU.

Both loads give a low CPU share per call; only the workers' run-queue time, which `diagnose`
reads over a second between two looks at the tree, tells them apart.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SNAKEPIT = os.environ.get("SNAKEPIT_BIN", "snakepit")
CORES = len(os.sched_getaffinity(0))

TREE = """[supervisors.app]
children = ["loaded"]

[pools.loaded]
adapter = "snakepit_bridge.showcase.ShowcaseAdapter"
size = {size}
"""


def diagnose_under_load(size: int, tool: str, args: str) -> dict:
    """The JSON diagnosis of a pool of `size` workers with `size` calls of `tool` in flight."""
    tmp = Path(tempfile.mkdtemp(prefix="sp", dir="/tmp"))
    env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(tmp))
    (tmp / "tree.toml").write_text(TREE.format(size=size))
    run = subprocess.Popen([SNAKEPIT, "run", "--print-address", str(tmp / "tree.toml")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    load = None
    try:
        address = run.stdout.readline().strip()
        assert address, "snakepit run did not start"
        load = subprocess.Popen([SNAKEPIT, "call", "--connect", address, "--pool", "loaded", "--tool", tool,
                                 "--args", args, "--repeat", "10000000", "--concurrency", str(size)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(5)  # past the start-up, with every worker busy
        done = subprocess.run([SNAKEPIT, "diagnose", "--json"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    finally:
        if load is not None:
            load.send_signal(signal.SIGINT)
            load.wait(timeout=60)
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def rules(diagnosis: dict) -> dict:
    (pool,) = diagnosis["pools"]
    return {r["rule"]: r for r in pool["recommendations"]}


@pytest.mark.skipif(CORES > 4, reason="oversubscribing more than 4 cores takes too many workers for a test")
def test_cpu_work_on_more_processes_than_cores_is_starving_not_waiting():
    found = rules(diagnose_under_load(3 * CORES, "cpu_burn", '{"milliseconds": 30}'))
    assert "cpu_starved" in found, found
    assert "starved of CPU, not waiting" in found["cpu_starved"]["why"]
    assert "profile" not in found  # not sent to the thread profile


def test_sleeping_calls_are_waiting_even_on_a_busy_machine():
    diagnosis = diagnose_under_load(4, "sleep", '{"seconds": 0.05}')
    assert diagnosis["machine"]["cores"] == CORES
    found = rules(diagnosis)
    assert "cpu_starved" not in found, found
    assert found["profile"]["what"] == "profile thread suits these calls better than process", found
