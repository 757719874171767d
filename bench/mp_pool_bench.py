"""The peer a Python user would reach for: ``multiprocessing.Pool`` on the same no-op task.

    /usr/bin/python3 bench/mp_pool_bench.py [--rounds 5] [--calls 20000] [--seq-calls 2000]

For each start method (fork, spawn) and each of ``--rounds`` interleaved rounds, a fresh
``Pool(2)`` (2 processes, like the snakepit throughput bench) is started and warmed up, then:

- throughput: ``--calls`` ``apply_async(noop)`` calls submitted at once, then all results
  awaited (the pool's own queue keeps both processes busy);
- latency: ``--seq-calls`` ``apply(noop)`` calls one at a time, each timed (p50 / p99).

Prints a table of medians over rounds and ``RESULT mp.<method> <key> <value>`` lines that
bench/run_all.sh combines with the snakepit numbers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from typing import Dict, List


def noop() -> None:
    return None


def percentile(xs: List[float], p: float) -> float:
    ys = sorted(xs)
    rank = max(1, min(len(ys), -(-len(ys) * p // 100)))
    return ys[int(rank) - 1]


def one_round(method: str, calls: int, seq_calls: int) -> Dict[str, float]:
    ctx = multiprocessing.get_context(method)
    t0 = time.perf_counter()
    with ctx.Pool(2) as pool:
        for r in [pool.apply_async(noop) for _ in range(200)]:
            r.get()
        start_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        results = [pool.apply_async(noop) for _ in range(calls)]
        for r in results:
            r.get()
        rate = calls / (time.perf_counter() - t0)
        lat = []
        for _ in range(seq_calls):
            c0 = time.perf_counter()
            pool.apply(noop)
            lat.append((time.perf_counter() - c0) * 1e6)
    return {"calls_per_s": rate, "p50_us": percentile(lat, 50), "p99_us": percentile(lat, 99),
            "seq_calls_per_s": seq_calls / (sum(lat) / 1e6), "start_ms": start_ms}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--seq-calls", type=int, default=2000)
    parser.add_argument("--methods", default="fork,spawn")
    args = parser.parse_args()
    methods = args.methods.split(",")
    runs: Dict[str, List[Dict[str, float]]] = {m: [] for m in methods}
    t_all = time.perf_counter()
    for _ in range(args.rounds):
        for m in methods:
            runs[m].append(one_round(m, args.calls, args.seq_calls))
    total = time.perf_counter() - t_all
    print(f"mp_pool_bench: multiprocessing.Pool(2), no-op task, {args.rounds} rounds, "
          f"{args.calls} apply_async calls + {args.seq_calls} sequential apply calls per round")
    print()
    header = ["start method", "calls/s (2 procs)", "p50 us (1 at a time)", "p99 us", "pool start ms"]
    rows = []
    results = []
    for m in methods:
        med = {k: statistics.median(r[k] for r in runs[m]) for k in runs[m][0]}
        rows.append([m, f"{med['calls_per_s']:.0f}", f"{med['p50_us']:.0f}", f"{med['p99_us']:.0f}",
                     f"{med['start_ms']:.0f}"])
        results += [f"RESULT mp.{m} {k} {v:.4f}" for k, v in med.items()]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    print("  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for r in rows:
        print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
    print()
    print("\n".join(results))
    print(f"\n(measured in {total:.1f} s)")


if __name__ == "__main__":
    main()
