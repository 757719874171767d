"""One slice of ``multiprocessing.Pool(2)`` no-op calls with a fixed number in flight, for
bench/fast_path_bench.cpp, which runs it between its own slices (same run, same machine load).

    /usr/bin/python3 bench/mp_pool_slice.py --calls 20000 [--in-flight 16] [--method fork]

Starts a fresh ``Pool(2)``, warms it up, then keeps ``--in-flight`` ``apply_async(noop)`` calls
outstanding (each completion submits the next) until ``--calls`` are done. Prints one JSON line:
calls, wall seconds, and the CPU seconds of this process (its threads: the submitting one and
the pool's handler threads) and of the two pool processes over the measured part, from
/proc/PID/task/*/schedstat (nanoseconds).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import threading
import time
from typing import List


def noop() -> None:
    return None


def cpu_s(pid: int) -> float:
    """CPU seconds of all threads of ``pid`` alive now."""
    total = 0
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--method", default="fork")
    args = parser.parse_args()
    with multiprocessing.get_context(args.method).Pool(2) as pool:
        for r in [pool.apply_async(noop) for _ in range(400)]:
            r.get()
        workers: List[int] = [p.pid for p in pool._pool]  # type: ignore[attr-defined]
        lock = threading.Lock()
        finished = threading.Event()
        state = {"sent": 0, "done": 0}

        def on_done(_: object) -> None:
            with lock:
                state["done"] += 1
                more = state["sent"] < args.calls
                if more:
                    state["sent"] += 1
                elif state["done"] == args.calls:
                    finished.set()
            if more:
                pool.apply_async(noop, callback=on_done)

        me0, w0 = cpu_s(os.getpid()), sum(cpu_s(p) for p in workers)
        t0 = time.perf_counter()
        with lock:
            first = min(args.in_flight, args.calls)
            state["sent"] = first
        for _ in range(first):
            pool.apply_async(noop, callback=on_done)
        finished.wait()
        wall = time.perf_counter() - t0
        me1, w1 = cpu_s(os.getpid()), sum(cpu_s(p) for p in workers)
    print(json.dumps({"calls": args.calls, "wall_s": wall, "host_cpu_s": me1 - me0,
                      "worker_cpu_s": w1 - w0}), flush=True)


if __name__ == "__main__":
    main()
