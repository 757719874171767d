"""`snakepit map` against `multiprocessing.Pool(2).map` on the same no-op items, in one run.

    /usr/bin/python3 bench/map_bench.py [--snakepit build/snakepit] [--items 20000] [--rounds 3]

Each of ``--rounds`` interleaved rounds:
- snakepit: ``snakepit map --tool noop --workers 2`` (its default ``--chunk 64``: map requests of 64
  items) over ``--items`` lines of ``{}``; its own
  summary line gives items/s (from the first item read to the last written, pool start
  excluded) and p50/p99 latency;
- multiprocessing: ``Pool(2).map(noop, range(items))`` with its default chunking (fork), timed
  after the pool has started.

Prints the medians and their ratio (the fast-path issue's target is >= 1.0).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import statistics
import subprocess
import tempfile
import time


def noop(_: int) -> None:
    return None


def snakepit_round(binary: str, feed: str) -> float:
    proc = subprocess.run([binary, "map", "--tool", "noop", "--workers", "2", "--args-file", feed],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    match = re.search(r"([0-9.]+) items/s", proc.stderr)
    assert match, proc.stderr
    return float(match.group(1))


def mp_round(items: int) -> float:
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(noop, range(200))  # warm up
        t0 = time.perf_counter()
        pool.map(noop, range(items))
        return items / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snakepit", default=os.path.join(os.path.dirname(__file__), "..", "build", "snakepit"))
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("{}\n" * args.items)
        feed = f.name
    try:
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(snakepit_round(args.snakepit, feed))
            theirs.append(mp_round(args.items))
    finally:
        os.unlink(feed)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"map_bench: {args.items} no-op items, 2 workers / 2 processes, {args.rounds} interleaved rounds")
    print(f"  snakepit map          {a:10.0f} items/s   (rounds: {', '.join(f'{x:.0f}' for x in ours)})")
    print(f"  multiprocessing map   {b:10.0f} items/s   (rounds: {', '.join(f'{x:.0f}' for x in theirs)})")
    print(f"  ratio snakepit / multiprocessing: {a / b:.3f}   (target >= 1.0)")
    print(f"RESULT map.snakepit items_per_s {a:.1f}")
    print(f"RESULT map.mp items_per_s {b:.1f}")


if __name__ == "__main__":
    main()
