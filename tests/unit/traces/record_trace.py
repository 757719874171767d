"""Records what `diagnose` sees of a pool under a steady load, for tests/unit/diagnosis_traces_test.cpp.

    python3 record_trace.py SNAKEPIT OUT.json --tool sleep --args '{"seconds": 0.05}' \
        --workers 4 --concurrency 4 [--profile thread --threads 4] [--warmup 8]

Starts `snakepit run` with one pool ("traced") of the showcase adapter, drives it through the gateway
with `call --repeat` at the given concurrency, and after the warm-up takes the two looks `diagnose`
takes: the tree's status (`inspect --json`) and the workers' scheduler figures
(/proc/PID/task/*/schedstat, per thread), a second apart, with the machine's figures (cores, memory, CPU
pressure, load). The trace is a JSON document; the test replays it through the same rules.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TREE = """[supervisors.app]
children = ["traced"]

[pools.traced]
adapter = "{adapter}"
size = {workers}
profile = "{profile}"
threads_per_worker = {threads}
"""


def schedstat(pid: int) -> dict[str, list[int]] | None:
    """Each thread's [ns on a CPU, ns in the run queue], by thread id."""
    threads = {}
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                fields = stat.read().split()
            threads[task] = [int(fields[0]), int(fields[1])]
    except OSError:
        return None
    return threads


def look(snakepit: str, run_pid: int) -> tuple[dict, dict]:
    status = json.loads(subprocess.run([snakepit, "inspect", "--pid", str(run_pid), "--json"], check=True,
                                       capture_output=True, text=True, timeout=60).stdout)
    pids = [w["pid"] for pool in status["pools"] for w in pool["workers"]]
    return status, {str(pid): stat for pid in pids if (stat := schedstat(pid)) is not None}


def machine() -> dict:
    def read(path: str) -> str:
        return Path(path).read_text() if Path(path).exists() else ""

    meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in read("/proc/meminfo").splitlines()}
    pressure = {}
    for line in read("/proc/pressure/cpu").splitlines():
        if line.startswith("some "):
            pressure = dict(part.split("=") for part in line.split()[1:])
    load = read("/proc/loadavg").split()
    return {"cores": len(os.sched_getaffinity(0)), "memory_total_bytes": meminfo.get("MemTotal", 0),
            "memory_available_bytes": meminfo.get("MemAvailable", 0),
            "cpu_pressure_10s": float(pressure["avg10"]) / 100 if pressure else None,
            "cpu_pressure_60s": float(pressure["avg60"]) / 100 if pressure else None,
            "load_1m": float(load[0]) if load else None,
            "runnable": int(load[3].split("/")[0]) if load else None, "kernel": os.uname().release}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("snakepit")
    parser.add_argument("out")
    parser.add_argument("--tool", required=True)
    parser.add_argument("--args", default="{}")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--profile", default="process")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=8)
    opts = parser.parse_args()
    adapter = "snakepit_bridge.showcase." + ("ThreadedShowcaseAdapter" if opts.profile == "thread" else "ShowcaseAdapter")
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree.toml"
        tree.write_text(TREE.format(adapter=adapter, workers=opts.workers, profile=opts.profile,
                                    threads=opts.threads))
        run = subprocess.Popen([opts.snakepit, "run", "--print-address", str(tree)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
        address = run.stdout.readline().strip()
        load = subprocess.Popen([opts.snakepit, "call", "--connect", address, "--pool", "traced", "--tool", opts.tool,
                                 "--args", opts.args, "--repeat", "10000000", "--concurrency", str(opts.concurrency)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(opts.warmup)
            t0 = time.monotonic()
            before, sched_before = look(opts.snakepit, run.pid)
            time.sleep(1)
            after, sched_after = look(opts.snakepit, run.pid)
            window = time.monotonic() - t0
            trace = {"recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "load": {"tool": opts.tool, "args": json.loads(opts.args), "workers": opts.workers,
                              "concurrency": opts.concurrency, "profile": opts.profile, "threads": opts.threads},
                     "machine": machine(), "window_s": window, "before": before, "after": after,
                     "sched_before": sched_before, "sched_after": sched_after}
        finally:
            load.send_signal(signal.SIGINT)
            load.wait(timeout=60)
            run.send_signal(signal.SIGTERM)
            run.wait(timeout=60)
    Path(opts.out).write_text(json.dumps(trace, indent=1) + "\n")
    print(f"wrote {opts.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
