#!/usr/bin/env bash
# Runs the whole benchmark suite against an existing build and prints one summary.
# Builds nothing. See docs/benchmarks.md.
#
#   bench/run_all.sh [BUILD_DIR]        (default: $SNAKEPIT_BUILD_DIR, else <repo>/build)
#
# Environment:
#   SNAKEPIT_PYTHON   interpreter for the workers (default /usr/bin/python3)
#   BENCH_OUT         directory for the raw outputs (default: a fresh /tmp/snakepit-bench-*)
#   BENCH_QUICK=1     a smoke run: 1 round and few calls (numbers not meaningful)
#   BENCH_WAIT_IDLE=S before each bench, wait up to S seconds for the machine to be idle
#                     (under 10% busy with other work); default 0: do not wait
#
# Takes about 6 minutes on 2 cores. Every bench interleaves its floors and the pool in
# the same run; the summary shows ratios of medians with PASS/FAIL against the targets.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
build="${1:-${SNAKEPIT_BUILD_DIR:-$repo/build}}"
bin="$build/bench"
export SNAKEPIT_PYTHON="${SNAKEPIT_PYTHON:-/usr/bin/python3}"
out="${BENCH_OUT:-$(mktemp -d /tmp/snakepit-bench-XXXXXX)}"
mkdir -p "$out"

for exe in latency_bench throughput_bench startup_bench profile_bench recycle_bench telemetry_bench stream_bench fast_path_bench arrays_bench gateway_bench node_bench cluster_bench autoscale_bench recovery_bench preload_bench; do
  if [[ ! -x "$bin/$exe" ]]; then
    echo "run_all.sh: $bin/$exe not found: build first, e.g." >&2
    echo "  cmake -S $repo -B $build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo && ninja -C $build" >&2
    exit 2
  fi
done
if ! "$SNAKEPIT_PYTHON" -c 'import grpc, google.protobuf' 2>/dev/null; then
  echo "run_all.sh: $SNAKEPIT_PYTHON cannot import grpc; set SNAKEPIT_PYTHON" >&2
  exit 2
fi

if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
  lat_args=(--rounds 1 --calls 120 --slices 2 --warmup 20)
  tput_args=(--rounds 1 --calls 320 --slices 1 --warmup 32)
  start_args=(--rounds 1)
  mp_args=(--rounds 1 --calls 2000 --seq-calls 200)
  prof_args=(--rounds 1 --scale 0.3)
  recycle_args=(--rounds 1 --slice-ms 1500)
  telemetry_args=(--rounds 1 --slice-ms 1000 --warmup-ms 200)
  stream_args=(--rounds 1 --small-n 300 --large-n 10 --session-calls 200)
  fast_args=(--rounds 1 --calls 1600 --seq-calls 300 --burn-calls 320)
  map_args=(--rounds 1 --items 5000)
  arrays_args=(--rounds 1 --big-mib 8 --small-calls 200 --transfers 50)
  gateway_args=(--rounds 1 --seq-calls 300 --calls 1600 --idle 100)
  node_args=(--rounds 1 --seq-calls 300 --calls 1600)
  cluster_args=(--rounds 1 --calls 320)
  autoscale_args=(--rounds 1 --burst-ms 3000 --idle-ms 2000)
  recovery_args=(--storm-ms 3000)
  preload_args=(--rounds 1 --many 40 --pss-mb 50 --recycle-s 2)
else
  lat_args=(--rounds 5 --calls 1000)
  tput_args=(--rounds 5 --calls 1200 --slices 3)
  start_args=(--rounds 5)
  mp_args=(--rounds 5)
  prof_args=(--rounds 5)
  recycle_args=(--rounds 5)
  telemetry_args=(--rounds 9)
  stream_args=(--rounds 7)
  fast_args=(--rounds 5)
  map_args=(--rounds 3 --items 100000)
  arrays_args=(--rounds 5)
  gateway_args=(--rounds 5)
  node_args=(--rounds 5)
  cluster_args=(--rounds 5)
  autoscale_args=(--rounds 3)
  recovery_args=(--storm-ms 10000)
  preload_args=(--rounds 5)
fi

# Share of the machine's CPU time used by others over one second while nothing of ours
# runs (other sessions, builds): the benchmarks assume an otherwise idle machine.
busy_percent() {
  local a b
  read -r -a a < <(head -1 /proc/stat)
  sleep 1
  read -r -a b < <(head -1 /proc/stat)
  local total=0 idle=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  idle=$((b[4] - a[4] + b[5] - a[5]))
  echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

busiest=0
run() {
  local name="$1"; shift
  local busy waited=0
  busy="$(busy_percent)"
  while (( busy >= 10 && waited < ${BENCH_WAIT_IDLE:-0} )); do
    busy="$(busy_percent)"
    waited=$((waited + 1))
  done
  (( busy > busiest )) && busiest=$busy
  echo "=== $name (machine busy before: ${busy}%) ==="
  "$@" 2>"$out/$name.stderr" | tee "$out/$name.txt" | grep -v '^RESULT '
  echo
}

started=$(date +%s)
echo "snakepit benchmark suite: build $build, python $SNAKEPIT_PYTHON, outputs in $out"
echo
run latency-recommended "$bin/latency_bench" --scheduler recommended "${lat_args[@]}"
run latency-default "$bin/latency_bench" --scheduler default --diagnostics 0 "${lat_args[@]}"
run throughput-recommended "$bin/throughput_bench" --scheduler recommended "${tput_args[@]}"
run throughput-default "$bin/throughput_bench" --scheduler default --deferred 0 "${tput_args[@]}"
run startup "$bin/startup_bench" "${start_args[@]}"
run mp-pool "$SNAKEPIT_PYTHON" "$here/mp_pool_bench.py" "${mp_args[@]}"
run profiles "$bin/profile_bench" "${prof_args[@]}"
# recycle_bench exits 1 when a call failed; the summary shows that as FAIL.
run recycling "$bin/recycle_bench" "${recycle_args[@]}" || true
# telemetry_bench exits 1 when a call failed or a handler misbehaved; the summary shows it.
run telemetry "$bin/telemetry_bench" "${telemetry_args[@]}" || true
# stream_bench exits 1 when a stream or call failed; the summary shows it.
run streaming "$bin/stream_bench" "${stream_args[@]}" || true
run fast-path "$bin/fast_path_bench" "${fast_args[@]}"
run map "$SNAKEPIT_PYTHON" "$here/map_bench.py" --snakepit "$build/snakepit" "${map_args[@]}"
# arrays_bench exits 1 when a result differed from what was sent; the summary shows it.
run arrays "$bin/arrays_bench" "${arrays_args[@]}" || true
run gateway "$bin/gateway_bench" "${gateway_args[@]}"
run nodes "$bin/node_bench" "${node_args[@]}"
# cluster_bench exits 1 when a failover lost a queued call; the summary shows it.
run clusters "$bin/cluster_bench" "${cluster_args[@]}" || true
run autoscaling "$bin/autoscale_bench" "${autoscale_args[@]}"
# recovery_bench exits 1 when a failure was not a typed worker error; the summary shows it.
run recovery "$bin/recovery_bench" "${recovery_args[@]}" || true
run preload "$bin/preload_bench" "${preload_args[@]}"
elapsed=$(( $(date +%s) - started ))

# Not named *.txt: the glob must not catch the file being written.
cat "$out"/*.txt | grep '^RESULT ' > "$out/results.lines" || true
"$SNAKEPIT_PYTHON" - "$out/results.lines" "$elapsed" "$busiest" <<'EOF'
import sys

values = {}
for line in open(sys.argv[1]):
    _, bench, key, value = line.split()
    values[(bench, key)] = float(value)
elapsed, busiest = int(sys.argv[2]), int(sys.argv[3])


def get(bench, key):
    return values.get((bench, key), float("nan"))


rows = []


def row(what, value, unit, target=None, ok=None):
    verdict = "" if ok is None else ("PASS" if ok else "FAIL")
    rows.append((what, value, unit, target or "", verdict))


def fmt(x, digits=2):
    return "-" if x != x else f"{x:.{digits}f}"


for sched in ("recommended", "default"):
    t = f"latency.{sched}"
    r = get(t, "pool_over_actor_p50")
    row(f"[{sched}] no-op p50: pool / one actor", fmt(r), "ratio", "<= 1.2", r <= 1.2)
    row(f"[{sched}] no-op p99: pool / one actor", fmt(get(t, "pool_over_actor_p99")), "ratio")
    row(f"[{sched}] no-op p50: pool / raw gRPC", fmt(get(t, "pool_over_raw_p50")), "ratio")
    row(f"[{sched}] no-op p99: pool / raw gRPC", fmt(get(t, "pool_over_raw_p99")), "ratio")
    r = get(t, "echo_pool_over_actor_p50")
    row(f"[{sched}] echo 1 KiB p50: pool / one actor", fmt(r), "ratio", "<= 1.2", r <= 1.2)
    row(f"[{sched}] no-op p50 raw / one actor / pool / pool via scoped_actor",
        " / ".join(fmt(get(t, k + "_p50_us"), 0) for k in ("raw", "actor", "pool", "pool-scoped")), "us")
    row(f"[{sched}] no-op p99 raw / one actor / pool",
        " / ".join(fmt(get(t, k + "_p99_us"), 0) for k in ("raw", "actor", "pool")), "us")
    row(f"[{sched}] host wake-ups per call raw / one actor / pool / scoped",
        " / ".join(fmt(get(t, k + "_host_vcs"), 1) for k in ("raw", "actor", "pool", "pool-scoped")),
        "vol. switches")
    row(f"[{sched}] worker wake-ups per call raw / one actor / pool",
        " / ".join(fmt(get(t, k + "_worker_vcs"), 1) for k in ("raw", "actor", "pool")), "vol. switches")
row("pool p50, default scheduler / recommended",
    fmt(get("latency.default", "pool_p50_us") / get("latency.recommended", "pool_p50_us")), "ratio")

for sched in ("recommended", "default"):
    t = f"throughput.{sched}.noop"
    r = get(t, "pool16_over_raw")
    row(f"[{sched}] throughput 2 workers: pool, 16 callers / raw", fmt(r), "ratio",
        ">= 0.8" if sched == "recommended" else None, (r >= 0.8) if sched == "recommended" else None)
    row(f"[{sched}] calls/s raw / pool-16", f"{fmt(get(t, 'raw_calls_per_s'), 0)} / "
        f"{fmt(get(t, 'pool-16_calls_per_s'), 0)}", "calls/s")
    row(f"[{sched}] host CPU per call raw / pool-16",
        f"{fmt(get(t, 'raw_host_cpu_us'), 0)} / {fmt(get(t, 'pool-16_host_cpu_us'), 0)}", "us")
t = "throughput.recommended.noop"
row("[recommended] host CPU per call later, when a call's timers fire",
    fmt(get(t, "deferred_cpu_us"), 0), "us")

r = get("startup", "pooln_over_floor")
row(f"pool of {fmt(get('startup', 'workers'), 0)} ready, first call on each / "
    f"({fmt(get('startup', 'workers'), 0)} x one worker / {fmt(get('startup', 'cpus'), 0)} CPUs)",
    fmt(r), "ratio", "<= 1.5", r <= 1.5)
row("  pool / floor / one worker", f"{fmt(get('startup', 'pooln_ms'), 0)} / {fmt(get('startup', 'floor_ms'), 0)}"
    f" / {fmt(get('startup', 'floor1_ms'), 0)}", "ms")

pool16 = get("throughput.recommended.noop", "pool-16_calls_per_s")
for method in ("fork", "spawn"):
    mp = get(f"mp.{method}", "calls_per_s")
    row(f"calls/s, snakepit pool-16 / multiprocessing.Pool(2) {method}", f"{fmt(pool16 / mp)}",
        f"ratio ({fmt(pool16, 0)} / {fmt(mp, 0)})")
    row(f"one at a time p50, snakepit pool / multiprocessing.Pool {method}",
        fmt(get("latency.recommended", "pool_p50_us") / get(f"mp.{method}", "p50_us")),
        f"ratio ({fmt(get('latency.recommended', 'pool_p50_us'), 0)} / "
        f"{fmt(get(f'mp.{method}', 'p50_us'), 0)} us)")

p = "profiles"
slots = fmt(get(p, "slots"), 0)
row(f"worker memory after load, {slots} processes / 1 process x {slots} threads: RSS / PSS / USS",
    " / ".join(fmt(get(p, f"process_over_thread_{m}_load")) for m in ("rss", "pss", "uss")),
    f"ratio (RSS {fmt(get(p, 'process_rss_load_mib'), 0)} / {fmt(get(p, 'thread_rss_load_mib'), 0)} MiB)")
row(f"start-up of {slots} slots until every worker replied, process / thread",
    fmt(get(p, "process_over_thread_served")),
    f"ratio ({fmt(get(p, 'process_served_ms'), 0)} / {fmt(get(p, 'thread_served_ms'), 0)} ms)")
for tool in ("sleep", "sha256", "matmul", "cpu_burn"):
    row(f"calls/s with {slots} in flight, {tool}: thread / process",
        fmt(get(p, f"thread_over_process_{tool}")),
        f"ratio ({fmt(get(p, f'thread_{tool}_calls_per_s'), 0)} / "
        f"{fmt(get(p, f'process_{tool}_calls_per_s'), 0)})")
row("cpu_burn work done (loop iterations/s): thread / process",
    fmt(get(p, "thread_over_process_cpu_burn_work")), "ratio")

t = "recycle.sleep"
failed = get(t, "failed")
row("recycling every ~1 s under load (8 callers, sleep 2 ms): failed calls", fmt(failed, 0),
    "calls", "0", failed == 0)
row("  calls/s, recycle / no recycle", fmt(get(t, "rate_ratio")),
    f"ratio ({fmt(get(t, 'recycle_calls_per_s'), 0)} / {fmt(get(t, 'no-recycle_calls_per_s'), 0)})")
row("  p50, recycle / no recycle", fmt(get(t, "p50_ratio")),
    f"ratio ({fmt(get(t, 'recycle_p50_us'), 0)} / {fmt(get(t, 'no-recycle_p50_us'), 0)} us)")
row("  p99, recycle / no recycle", fmt(get(t, "p99_ratio")),
    f"ratio ({fmt(get(t, 'recycle_p99_us'), 0)} / {fmt(get(t, 'no-recycle_p99_us'), 0)} us)")
row("  recycles per slice (median)", fmt(get(t, "recycle_recycles"), 0), "recycles")

t = "telemetry.noop"
r = get(t, "rate_ratio")
row("telemetry: no-op calls/s (2 workers, 16 callers), 4 handlers / none", fmt(r),
    f"ratio ({fmt(get(t, 'handlers_calls_per_s'), 0)} / {fmt(get(t, 'none_calls_per_s'), 0)})",
    ">= 0.95", r >= 0.95)
row("  calls/s, median of each round's 4 handlers / none", fmt(get(t, "paired_rate_ratio")), "ratio")
row("  p50, 4 handlers / none", fmt(get(t, "p50_ratio")),
    f"ratio ({fmt(get(t, 'handlers_p50_us'), 0)} / {fmt(get(t, 'none_p50_us'), 0)} us)")
row("  host CPU per call, 4 handlers / none", fmt(get(t, "host_cpu_ratio")),
    f"ratio ({fmt(get(t, 'handlers_host_cpu_us'), 0)} / {fmt(get(t, 'none_host_cpu_us'), 0)} us)")
failed = get(t, "failed")
row("  failed calls", fmt(failed, 0), "calls", "0", failed == 0)

for size in ("1KiB", "1MiB"):
    t = f"stream.{size}"
    for w in ("w16", "w64"):
        row(f"streaming {size} items, 1 worker: items/s, stream {w} / sequential unary",
            fmt(get(t, f"{w}_over_unary")),
            f"ratio ({fmt(get(t, f'stream-{w}_items_per_s'), 0)} / {fmt(get(t, 'unary_items_per_s'), 0)})")
    row(f"  {size} MB/s stream w16 / w64 / unary",
        " / ".join(fmt(get(t, f"{m}_mb_per_s"), 1) for m in ("stream-w16", "stream-w64", "unary")), "MB/s")
t = "session"
row("no-op p50, session-routed / unrouted (2 workers, hint)", fmt(get(t, "p50_ratio")),
    f"ratio ({fmt(get(t, 'session_p50_us'), 0)} / {fmt(get(t, 'unrouted_p50_us'), 0)} us)")
row("no-op p99, session-routed / unrouted", fmt(get(t, "p99_ratio")),
    f"ratio ({fmt(get(t, 'session_p99_us'), 0)} / {fmt(get(t, 'unrouted_p99_us'), 0)} us)")
failed = get("stream", "failed")
row("  failed streams and calls", fmt(failed, 0), "calls", "0", failed == 0)

t = "fast_path"
r = get(t, "batches16_over_mp16")
row("fast path: no-op calls/s, 2 workers, 16 callers / multiprocessing.Pool(2), 16 in flight", fmt(r),
    f"ratio ({fmt(get(t, 'batches-16_calls_per_s'), 0)} / {fmt(get(t, 'mp-16_calls_per_s'), 0)})",
    ">= 0.5", r >= 0.5)
row("  CPU per call (host + Python), batches-16 / mp-16",
    fmt(get(t, "batches-16_cpu_us") / get(t, "mp-16_cpu_us")),
    f"ratio ({fmt(get(t, 'batches-16_cpu_us'), 1)} / {fmt(get(t, 'mp-16_cpu_us'), 1)} us)")
row("  calls/s, batches-16 / unary-16 (the previous path)",
    fmt(get(t, "batches-16_calls_per_s") / get(t, "unary-16_calls_per_s")), "ratio")
r = get(t, "seq_p50_batches_over_unary")
row("  single call p50, batches / previous path", fmt(r),
    f"ratio ({fmt(get(t, 'batches-1_p50_us'), 0)} / {fmt(get(t, 'unary-1_p50_us'), 0)} us)", "<= 1.0", r <= 1.0)
row("  single call p50, batches / raw gRPC", fmt(get(t, "batches-1_p50_us") / get(t, "raw-1_p50_us")), "ratio")
r = get(t, "burn_share_of_cores")
row("  cpu_burn(1 ms) calls/s / (cores x 1000)", fmt(r, 3),
    f"ratio ({fmt(get(t, 'burn-16_calls_per_s'), 0)} calls/s)", ">= 0.95", r >= 0.95)
r = get("map.snakepit", "items_per_s") / get("map.mp", "items_per_s")
row("snakepit map / multiprocessing.Pool(2).map, no-op items", fmt(r, 4),
    f"ratio ({fmt(get('map.snakepit', 'items_per_s'), 0)} / {fmt(get('map.mp', 'items_per_s'), 0)} items/s)",
    ">= 1.0", r >= 1.0)

r = get("node", "p50_ratio")
row("remote pool p50 / in-process p50 (other node, loopback TCP)", fmt(r), "ratio", "<= 2", r <= 2)
r = get("node", "throughput_ratio")
row("remote pool calls/s / in-process, 16 callers", fmt(r), "ratio", ">= 0.7", r >= 0.7)
r = get("cluster", "throughput_ratio")
row("cluster of 2 nodes / one node, cpu_burn(5 ms) calls/s", fmt(r), "ratio", ">= 0.9", r >= 0.9)
for key, what in (("kill_answered_ms", "SIGKILLed"), ("stop_answered_ms", "frozen (SIGSTOP)")):
    r = get("cluster", key)
    row(f"cluster: node {what} under load, until its callers are answered", fmt(r, 0), "ms",
        "< 2000", r < 2000)
row("autoscaled pool (1..8) under a burst: p99 queue wait", fmt(get("autoscale", "p99_queue_ms"), 0), "ms")
row("  worker-seconds, autoscaled / fixed 8", fmt(get("autoscale", "worker_seconds_vs_fixed8")), "ratio")
row("kill storm (a worker of 4 every 150 ms): time at full strength", fmt(get("recovery", "full_strength_pct"), 1), "%")
r = get("recovery", "none_ready_pct")
row("  time with no worker ready", fmt(r, 1), "%", "< 5", r < 5)

r = get("preload", "start_ratio")
row("preload: 16 workers served, fork server / plain start", fmt(r), "ratio", "<= 0.3", r <= 0.3)
r = get("preload", "many_ms")
row("preload: 100 workers served", fmt(r, 0), "ms", "< 3000", r < 3000)
r = get("preload", "pss_ratio")
row("preload: PSS of 8 workers, array in preload() / in setup()", fmt(r), "ratio", "<= 0.3", r <= 0.3)
r = get("preload", "recycle_p99_ratio")
row("preload: p99 with / without recycling each worker every 1 s", fmt(r), "ratio", "<= 1.5", r <= 1.5)
r = get("preload", "recycle_failures")
row("preload: failed calls while recycling", fmt(r, 0), "calls", "0", r == 0)

widths = [max(len(r[i]) for r in rows) for i in range(5)]
print("=== summary ===")
print(f"{'measure':<{widths[0]}}  {'value':>{widths[1]}}  {'unit':<{widths[2]}}  {'target':>6}  verdict")
print("-" * (sum(widths) + 20))
for r in rows:
    print(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>6}  {r[4]}")
print(f"\nsuite ran {elapsed} s; the machine was at most {busiest}% busy with other work just before a bench"
      + (" (numbers may be inflated: rerun on an idle machine)" if busiest > 15 else ""))
EOF
echo "raw outputs: $out"
