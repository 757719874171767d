// The pure parts of the crash barrier: retry decisions (attempts, back-off
// with jitter, the deadline), the poison table (counts, threshold, expiry,
// bound, request keys) and the circuit breaker's states, on a fake clock; and
// the metrics their events and the pool's status become.
#include <chrono>
#include <string>

#include <doctest/doctest.h>

#include "snakepit/actors/circuit_breaker.hpp"
#include "snakepit/actors/poison_table.hpp"
#include "snakepit/actors/retry_policy.hpp"
#include "snakepit/actors/telemetry.hpp"
#include "snakepit/observability/metrics_registry.hpp"
#include "snakepit/observability/prometheus_text.hpp"

using namespace snakepit;
using namespace std::chrono_literals;

namespace {

caf::timestamp at(std::chrono::milliseconds ms) {
  return caf::timestamp{} + std::chrono::hours{24 * 365} + ms;
}

std::chrono::steady_clock::time_point t(std::chrono::milliseconds ms) {
  return std::chrono::steady_clock::time_point{} + std::chrono::hours{1} + ms;
}

} // namespace

TEST_CASE("retry: only crash kinds are retried") {
  CHECK(is_crash_kind(errc::worker_crashed));
  CHECK(is_crash_kind(errc::worker_replaced));
  CHECK_FALSE(is_crash_kind(errc::python_exception));
  CHECK_FALSE(is_crash_kind(errc::timeout));
  CHECK_FALSE(is_crash_kind(errc::pool_saturated));
  CHECK_FALSE(is_crash_kind(errc::poison_request));
  CHECK_FALSE(is_crash_kind(errc::circuit_open));
}

TEST_CASE("retry: back-off doubles up to its maximum, jittered into its upper half") {
  retry_settings s;
  s.max_attempts = 10;
  s.backoff_min = 100ms;
  s.backoff_max = 1000ms;
  CHECK(retry_backoff(s, 2, 0.999999) <= 100ms);
  CHECK(retry_backoff(s, 2, 0.0) == 50ms);
  CHECK(retry_backoff(s, 3, 0.0) == 100ms);
  CHECK(retry_backoff(s, 4, 0.0) == 200ms);
  CHECK(retry_backoff(s, 9, 0.0) == 500ms);   // capped at 1000 ms, half of it
  CHECK(retry_backoff(s, 60, 0.5) == 750ms);  // no overflow far out
  for (double j : {0.0, 0.25, 0.5, 0.75, 0.99}) {
    auto d = retry_backoff(s, 3, j);
    CHECK(d >= 100ms);
    CHECK(d <= 200ms);
  }
}

TEST_CASE("retry: bounded attempts and the caller's deadline") {
  retry_settings s;
  s.max_attempts = 3;
  s.backoff_min = 100ms;
  s.backoff_max = 1s;
  auto now = at(0ms);
  auto d = decide_retry(s, 1, now, at(10s), 0.0);
  CHECK(d.retry);
  CHECK(d.delay == 50ms);
  d = decide_retry(s, 2, now, at(10s), 1.0);
  CHECK(d.retry);
  CHECK(d.delay == 200ms);
  d = decide_retry(s, 3, now, at(10s), 0.0);
  CHECK_FALSE(d.retry);
  CHECK(d.why_not.find("all 3 attempts") != std::string::npos);
  // The back-off would end at the deadline: no retry.
  d = decide_retry(s, 1, now, at(40ms), 0.0);
  CHECK_FALSE(d.retry);
  CHECK(d.why_not.find("deadline") != std::string::npos);
  s.max_attempts = 1;
  d = decide_retry(s, 1, now, at(10s), 0.0);
  CHECK_FALSE(d.retry);
  CHECK(d.why_not.find("off") != std::string::npos);
}

TEST_CASE("poison: request keys follow tool and arguments") {
  auto k = request_key("crash", {{"n", 1}, {"s", "x"}});
  CHECK(k == request_key("crash", {{"s", "x"}, {"n", 1}}));
  CHECK(k != request_key("crash", {{"n", 2}, {"s", "x"}}));
  CHECK(k != request_key("other", {{"n", 1}, {"s", "x"}}));
  CHECK(request_key("t", {{"v", 1}}) != request_key("t", {{"v", 1.0}}));
  CHECK(request_key("t", {{"v", "1"}}) != request_key("t", {{"v", bytes{"1"}}}));
  CHECK(request_key("t", {}, std::vector<value::map>{value::map{{"a", 1}}})
        != request_key("t", {}, std::vector<value::map>{value::map{{"a", 2}}}));
  // Large blobs: sampled, but size, edges and samples all count.
  std::string big(1 << 20, 'a');
  auto kb = request_key("t", {{"b", bytes{big}}});
  CHECK(kb == request_key("t", {{"b", bytes{big}}}));
  auto changed = big;
  changed[10] = 'b';
  CHECK(kb != request_key("t", {{"b", bytes{changed}}}));
  changed = big;
  changed[big.size() - 3] = 'b';
  CHECK(kb != request_key("t", {{"b", bytes{changed}}}));
  CHECK(kb != request_key("t", {{"b", bytes{big + "a"}}}));
}

TEST_CASE("poison: tainted at the threshold, refused until the taint expires") {
  poison_settings s;
  s.threshold = 3;
  s.ttl = 60s;
  poison_table table{s};
  CHECK(table.record_crash(7, "crash", t(0ms)) == 1);
  CHECK(table.tainted(7, t(1ms)) == nullptr);
  CHECK(table.record_crash(7, "crash", t(10ms)) == 2);
  CHECK(table.tainted(7, t(11ms)) == nullptr);
  CHECK(table.record_crash(7, "crash", t(20ms)) == 3);
  auto* e = table.tainted(7, t(21ms));
  REQUIRE(e != nullptr);
  CHECK(e->tool == "crash");
  CHECK(e->crashes == 3);
  CHECK(table.tainted(8, t(21ms)) == nullptr);
  CHECK(table.tainted_count(t(21ms)) == 1);
  // The ttl counts from the last crash.
  CHECK(table.tainted(7, t(20ms) + 59s) != nullptr);
  CHECK(table.tainted(7, t(20ms) + 60s) == nullptr);
  CHECK(table.size() == 0);
  CHECK(table.crashes(7, t(20ms) + 61s) == 0);
  // Crashes spread wider than the ttl never add up.
  CHECK(table.record_crash(9, "crash", t(0ms)) == 1);
  CHECK(table.record_crash(9, "crash", t(0ms) + 61s) == 1);
}

TEST_CASE("poison: threshold 0 turns it off") {
  poison_settings s;
  s.threshold = 0;
  poison_table table{s};
  CHECK_FALSE(table.enabled());
  table.record_crash(1, "x", t(0ms));
  table.record_crash(1, "x", t(1ms));
  CHECK(table.tainted(1, t(2ms)) == nullptr);
}

TEST_CASE("poison: the table is bounded; expired entries go first, then the oldest") {
  poison_settings s;
  s.threshold = 1;
  s.ttl = 10s;
  s.max_entries = 3;
  poison_table table{s};
  table.record_crash(1, "x", t(0ms));
  table.record_crash(2, "x", t(5s));
  table.record_crash(3, "x", t(6s));
  CHECK(table.size() == 3);
  // Entry 1 expired at 10 s: it makes room, nothing is evicted.
  table.record_crash(4, "x", t(10s));
  CHECK(table.size() == 3);
  CHECK(table.evicted() == 0);
  CHECK(table.tainted(1, t(10s)) == nullptr);
  // Full of live entries: the one whose last crash is oldest (2) goes.
  table.record_crash(5, "x", t(11s));
  CHECK(table.size() == 3);
  CHECK(table.evicted() == 1);
  CHECK(table.tainted(2, t(11s)) == nullptr);
  CHECK(table.tainted(3, t(11s)) != nullptr);
  CHECK(table.tainted(5, t(11s)) != nullptr);
  CHECK(table.expire(t(30s)) == 3);
}

TEST_CASE("breaker: opens at the threshold within the window, refuses with retry-after") {
  breaker_settings s;
  s.threshold = 3;
  s.window = 1s;
  s.open_time = 5s;
  circuit_breaker b{s};
  CHECK(b.state(t(0ms)) == breaker_state::closed);
  CHECK_FALSE(b.on_crash(t(0ms)));
  CHECK_FALSE(b.on_crash(t(500ms)));
  // The first crash left the window: still 2.
  CHECK_FALSE(b.on_crash(t(1000ms)));
  CHECK(b.recent_crashes(t(1000ms)) == 2);
  CHECK(b.admit(t(1000ms)).allowed);
  auto changed = b.on_crash(t(1200ms));
  REQUIRE(changed);
  CHECK(*changed == breaker_state::open);
  CHECK(b.opened() == 1);
  auto a = b.admit(t(2200ms));
  CHECK_FALSE(a.allowed);
  CHECK(a.retry_after == 4s);
  CHECK(b.refused() == 1);
  // Crashes of calls already running do not extend it.
  CHECK_FALSE(b.on_crash(t(3000ms)));
  CHECK(b.state(t(6200ms)) == breaker_state::half_open);
}

TEST_CASE("breaker: half-open lets one probe through; its success closes it") {
  breaker_settings s;
  s.threshold = 1;
  s.window = 1s;
  s.open_time = 1s;
  circuit_breaker b{s};
  b.on_crash(t(0ms));
  std::optional<breaker_state> changed;
  auto probe = b.admit(t(1000ms), &changed);
  CHECK(probe.allowed);
  CHECK(probe.probe);
  REQUIRE(changed);
  CHECK(*changed == breaker_state::half_open);
  auto other = b.admit(t(1001ms));
  CHECK_FALSE(other.allowed);
  CHECK(other.retry_after > 0ms);
  auto closed = b.probe_done(false, t(1100ms));
  REQUIRE(closed);
  CHECK(*closed == breaker_state::closed);
  CHECK(b.admit(t(1101ms)).allowed);
  CHECK_FALSE(b.admit(t(1102ms)).probe);
}

TEST_CASE("breaker: a crash while half-open opens it again") {
  breaker_settings s;
  s.threshold = 2;
  s.window = 10s;
  s.open_time = 2s;
  circuit_breaker b{s};
  b.on_crash(t(0ms));
  b.on_crash(t(1ms));
  CHECK(b.admit(t(2001ms)).probe);
  auto reopened = b.on_crash(t(2100ms));  // the probe's worker died
  REQUIRE(reopened);
  CHECK(*reopened == breaker_state::open);
  CHECK_FALSE(b.probe_done(true, t(2100ms)));  // already open
  CHECK(b.opened() == 2);
  CHECK_FALSE(b.admit(t(4000ms)).allowed);
  CHECK(b.admit(t(4100ms)).probe);
}

TEST_CASE("breaker: threshold 0 is no breaker") {
  breaker_settings s;
  s.threshold = 0;
  circuit_breaker b{s};
  for (int i = 0; i < 100; ++i)
    CHECK_FALSE(b.on_crash(t(std::chrono::milliseconds{i})));
  CHECK(b.admit(t(200ms)).allowed);
  CHECK(b.state(t(200ms)) == breaker_state::closed);
}

TEST_CASE("breaker: a call that cannot be a probe passes only a closed breaker") {
  breaker_settings s;
  s.threshold = 1;
  s.open_time = 1s;
  circuit_breaker b{s};
  b.on_crash(t(0ms));
  auto a = b.admit(t(1500ms), nullptr, false);
  CHECK_FALSE(a.allowed);
  CHECK(b.state(t(1500ms)) == breaker_state::half_open);
  CHECK(b.admit(t(1501ms)).probe);
}

TEST_CASE("crash barrier metrics: counters from the events, gauges from the pool status") {
  telemetry bus;
  metrics_registry registry{bus};
  bus.emit({"snakepit.request.retried", {{"attempt", 2}}, {{"pool", "p"}, {"tool", "t"}}});
  bus.emit({"snakepit.request.poisoned", {{"crashes", 3}}, {{"pool", "p"}, {"tool", "t"}}});
  bus.emit({"snakepit.request.poison_refused", {}, {{"pool", "p"}, {"tool", "t"}}});
  bus.emit({"snakepit.request.poison_refused", {}, {{"pool", "p"}, {"tool", "t"}}});
  bus.emit({"snakepit.request.breaker_refused", {}, {{"pool", "p"}, {"tool", "t"}}});
  bus.emit({"snakepit.pool.breaker", {}, {{"pool", "p"}, {"state", "open"}}});
  pool_status st;
  st.name = "p";
  st.breaker = "half_open";
  st.poisoned = 1;
  auto text = render_prometheus(registry.snapshot(), {st});
  INFO(text);
  for (auto line : {"snakepit_request_retries_total{pool=\"p\",tool=\"t\"} 1",
                    "snakepit_poisoned_requests_total{pool=\"p\",tool=\"t\"} 1",
                    "snakepit_poison_refusals_total{pool=\"p\",tool=\"t\"} 2",
                    "snakepit_breaker_refusals_total{pool=\"p\"} 1",
                    "snakepit_breaker_transitions_total{pool=\"p\",state=\"open\"} 1",
                    "snakepit_pool_breaker_state{pool=\"p\",state=\"half_open\"} 1",
                    "snakepit_pool_breaker_state{pool=\"p\",state=\"open\"} 0",
                    "snakepit_pool_poisoned_requests{pool=\"p\"} 1"})
    CHECK_MESSAGE(text.find(line) != std::string::npos, line);
}
