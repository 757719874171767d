"""Reads a snakepit status server with a real HTTP client and checks what it serves.

    check_metrics.py BASE_URL POOL MIN_REQUESTS

/metrics must parse with prometheus_client's text-format parser and hold the pool's gauges, its
request counter (at least MIN_REQUESTS ok calls of tool "noop") and latency histograms; /status
must be the JSON status document with the pool and its workers' pids. Prints a one-line JSON
summary; exits 1 with the reason on the first failed check.
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def fail(reason: str) -> None:
    print(reason, file=sys.stderr)
    sys.exit(1)


def get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers.get("Content-Type", ""), response.read().decode()


def main() -> None:
    base, pool, min_requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
    content_type, text = get(base + "/metrics")
    if not content_type.startswith("text/plain"):
        fail(f"/metrics content type {content_type!r}")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("snakepit_pool_ready_workers", "snakepit_pool_capacity", "snakepit_pool_busy",
                 "snakepit_worker_rss_bytes", "snakepit_requests", "snakepit_request_duration_seconds",
                 "snakepit_request_queue_seconds"):
        if name not in families:
            fail(f"/metrics lacks {name}; has {sorted(families)}")
    ready = [s for s in families["snakepit_pool_ready_workers"].samples if s.labels["pool"] == pool]
    if not ready or ready[0].value < 1:
        fail(f"no ready workers for pool {pool}: {ready}")
    ok = sum(s.value for s in families["snakepit_requests"].samples
             if s.name == "snakepit_requests_total" and s.labels.get("pool") == pool
             and s.labels.get("tool") == "noop" and s.labels.get("outcome") == "ok")
    if ok < min_requests:
        fail(f"snakepit_requests_total{{pool={pool},tool=noop,outcome=ok}} is {ok} < {min_requests}")
    hist = families["snakepit_request_duration_seconds"]
    if hist.type != "histogram":
        fail(f"snakepit_request_duration_seconds is a {hist.type}")
    buckets = [s for s in hist.samples if s.name.endswith("_bucket") and s.labels.get("tool") == "noop"]
    if not buckets or buckets[-1].labels["le"] != "+Inf":
        fail(f"histogram buckets of noop: {buckets[-3:]}")
    counts = [s.value for s in buckets]
    if counts != sorted(counts):
        fail(f"histogram buckets are not cumulative: {counts}")
    content_type, body = get(base + "/status")
    if not content_type.startswith("application/json"):
        fail(f"/status content type {content_type!r}")
    status = json.loads(body)
    pools = {p["name"]: p for p in status["pools"]}
    if pool not in pools or not pools[pool]["workers"]:
        fail(f"/status lacks pool {pool} or its workers: {body[:300]}")
    print(json.dumps({"requests_ok": ok, "buckets": counts[-1],
                      "pids": [w["pid"] for w in pools[pool]["workers"]],
                      "served": pools[pool]["served"]}))


if __name__ == "__main__":
    main()
