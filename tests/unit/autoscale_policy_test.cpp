// The autoscaling decision logic against load traces: when it grows, by how
// much, when it shrinks, and that it neither overshoots nor flaps.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "snakepit/actors/autoscale_policy.hpp"

using namespace snakepit;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

autoscale_settings settings(std::uint32_t min, std::uint32_t max) {
  autoscale_settings s;
  s.min_size = min;
  s.max_size = max;
  s.scale_up_wait = 200ms;
  s.busy_threshold = 0.9;
  s.busy_window = 2000ms;
  s.idle_timeout = 5000ms;
  s.max_step_up = 4;
  s.up_cooldown = 500ms;
  s.down_cooldown = 3000ms;
  return s;
}

autoscale_sample sample(clock_type::time_point now, std::uint32_t ready, std::uint32_t busy,
                        std::uint32_t queued = 0, std::chrono::milliseconds wait = 0ms) {
  autoscale_sample s;
  s.now = now;
  s.ready = ready;
  s.capacity = ready;
  s.busy = busy;
  s.queued = queued;
  s.oldest_wait = wait;
  for (std::uint32_t i = 0; i < ready; ++i)
    s.workers.push_back({"w-" + std::to_string(i + 1),
                         i < busy ? std::nullopt
                                  : std::optional<clock_type::time_point>{now - 10min},
                         false});
  return s;
}

/// A pool driven by the policy: requests arrive at `rate(t)` per second and
/// take `work` each; new workers are ready `start_time` after being asked
/// for; retired ones leave at once. Every 100 ms it samples and applies.
struct simulated_pool {
  autoscale_policy policy;
  clock_type::time_point t0 = clock_type::now();
  clock_type::time_point now = t0;
  struct worker {
    std::string id;
    clock_type::time_point ready_at;
    clock_type::time_point busy_until;
    clock_type::time_point idle_since;
  };
  std::vector<worker> workers;
  std::vector<clock_type::time_point> queue;  // arrival times
  std::uint32_t next_id = 0;
  std::uint32_t peak = 0;
  int changes = 0;
  double worker_seconds = 0;
  std::chrono::milliseconds worst_wait{0};

  simulated_pool(autoscale_settings s, std::uint32_t start) : policy(s) {
    for (std::uint32_t i = 0; i < start; ++i)
      add(now);
  }

  void add(clock_type::time_point ready_at) {
    workers.push_back({"w-" + std::to_string(++next_id), ready_at, ready_at, ready_at});
  }

  void run(std::chrono::milliseconds length, double rate_per_s,
           std::chrono::milliseconds work = 50ms) {
    auto end = now + length;
    double owed = 0;
    while (now < end) {
      now += 10ms;
      owed += rate_per_s / 100.0;
      for (; owed >= 1; owed -= 1)
        queue.push_back(now);
      for (auto& w : workers) {
        if (queue.empty())
          break;
        if (w.ready_at <= now && w.busy_until <= now) {
          worst_wait = std::max(worst_wait, std::chrono::duration_cast<std::chrono::milliseconds>(
                                              now - queue.front()));
          queue.erase(queue.begin());
          w.busy_until = now + work;
          w.idle_since = w.busy_until;
        }
      }
      worker_seconds += 0.01 * static_cast<double>(workers.size());
      if ((now - t0) % 100ms == 0ms)
        apply(policy.decide(observe()));
    }
  }

  autoscale_sample observe() const {
    autoscale_sample s;
    s.now = now;
    for (auto& w : workers) {
      if (w.ready_at > now) {
        ++s.starting;
        continue;
      }
      ++s.ready;
      ++s.capacity;
      bool busy = w.busy_until > now;
      s.busy += busy ? 1 : 0;
      s.workers.push_back({w.id, busy ? std::nullopt : std::optional{w.idle_since}, false});
    }
    s.queued = static_cast<std::uint32_t>(queue.size());
    if (!queue.empty())
      s.oldest_wait = std::chrono::duration_cast<std::chrono::milliseconds>(now - queue.front());
    return s;
  }

  void apply(const autoscale_decision& d) {
    if (d.none())
      return;
    ++changes;
    for (std::uint32_t i = 0; i < d.grow; ++i)
      add(now + 300ms);
    if (d.retire)
      workers.erase(std::remove_if(workers.begin(), workers.end(),
                                   [&](const worker& w) { return w.id == *d.retire; }),
                    workers.end());
    peak = std::max<std::uint32_t>(peak, static_cast<std::uint32_t>(workers.size()));
  }
};

} // namespace

TEST_CASE("autoscale: off when min_size equals max_size") {
  autoscale_policy p{settings(4, 4)};
  auto now = clock_type::now();
  CHECK(p.decide(sample(now, 4, 4, 100, 5000ms)).none());
}

TEST_CASE("autoscale: a queue that waits grows the pool by what it needs, capped") {
  autoscale_policy p{settings(1, 8)};
  auto now = clock_type::now();
  // Waiting, but not yet long enough.
  CHECK(p.decide(sample(now, 2, 2, 3, 150ms)).none());
  auto d = p.decide(sample(now + 100ms, 2, 2, 3, 250ms));
  CHECK(d.grow == 3);
  CHECK(d.reason.find("3 queued") != std::string::npos);
  // Not again while those start, nor within up_cooldown after.
  auto starting = sample(now + 200ms, 2, 2, 3, 350ms);
  starting.starting = 3;
  CHECK(p.decide(starting).none());
  CHECK(p.decide(sample(now + 400ms, 5, 5, 9, 500ms)).none());
  // After the cooldown: by at most max_step_up, and never past max_size.
  d = p.decide(sample(now + 700ms, 5, 5, 9, 800ms));
  CHECK(d.grow == 3);  // 8 - 5, below max_step_up (4) and the 9 wanted
  CHECK(p.decide(sample(now + 2000ms, 8, 8, 50, 2000ms)).none());
}

TEST_CASE("autoscale: a pool busy for a whole window grows by one") {
  autoscale_policy p{settings(2, 4)};  // min 2: the idle one is not retired meanwhile
  auto now = clock_type::now();
  CHECK(p.decide(sample(now, 2, 2)).none());
  CHECK(p.decide(sample(now + 1000ms, 2, 2)).none());
  // A dip below the threshold restarts the window.
  CHECK(p.decide(sample(now + 1500ms, 2, 1)).none());
  CHECK(p.decide(sample(now + 3000ms, 2, 2)).none());
  auto d = p.decide(sample(now + 5100ms, 2, 2));
  CHECK(d.grow == 1);
  CHECK(d.reason.find("busy") != std::string::npos);
}

TEST_CASE("autoscale: idle workers go one at a time, never below min_size, never with sessions") {
  autoscale_policy p{settings(2, 6)};
  auto now = clock_type::now();
  auto s = sample(now, 4, 0);
  s.workers[0].has_sessions = true;  // the longest idle holds a session
  s.workers[0].idle_since = now - 20min;
  auto d = p.decide(s);
  REQUIRE(d.retire);
  CHECK(*d.retire != "w-1");
  CHECK(d.reason.find("idle") != std::string::npos);
  // The next only after down_cooldown.
  CHECK(p.decide(sample(now + 1000ms, 3, 0)).none());
  CHECK(p.decide(sample(now + 3100ms, 3, 0)).retire);
  // At min_size: no more.
  CHECK(p.decide(sample(now + 10000ms, 2, 0)).none());
  // Not idle long enough: kept.
  autoscale_policy q{settings(1, 6)};
  auto fresh = sample(now, 3, 0);
  for (auto& w : fresh.workers)
    w.idle_since = now - 1000ms;
  CHECK(q.decide(fresh).none());
}

TEST_CASE("autoscale: no shrink right after growing, or while anything waits or drains") {
  autoscale_policy p{settings(1, 8)};
  auto now = clock_type::now();
  REQUIRE(p.decide(sample(now, 2, 2, 4, 300ms)).grow > 0);
  CHECK(p.decide(sample(now + 1000ms, 6, 0)).none());  // within down_cooldown
  auto waiting = sample(now + 5000ms, 6, 0, 1, 10ms);
  CHECK(p.decide(waiting).none());
  auto draining = sample(now + 5000ms, 6, 0);
  draining.draining = 1;
  CHECK(p.decide(draining).none());
  CHECK(p.decide(sample(now + 5000ms, 6, 0)).retire);
}

TEST_CASE("autoscale: a burst trace (idle, 10 s of load, idle) grows to fit and comes back") {
  simulated_pool pool{settings(1, 8), 1};
  pool.run(5s, 0);      // idle
  CHECK(pool.workers.size() == 1);
  pool.run(10s, 120);   // 120 calls/s of 50 ms: 6 workers' worth
  auto at_peak = pool.workers.size();
  CHECK(at_peak >= 6);
  CHECK(pool.peak <= 8);
  CHECK(pool.worst_wait < 3s);
  pool.run(60s, 0);     // idle again: back to min_size, one step at a time
  CHECK(pool.workers.size() == 1);
  // No flapping: a handful of growths, then one retirement per worker.
  CHECK(pool.changes <= 6 + static_cast<int>(at_peak));
  // Cheaper than a fixed pool of 8 over the same 75 s.
  CHECK(pool.worker_seconds < 8 * 75 * 0.6);
}

TEST_CASE("autoscale: a steady load settles and then holds its size") {
  simulated_pool pool{settings(1, 8), 6};
  pool.run(60s, 30);  // 30 calls/s of 50 ms: 1.5 workers' worth, 6 present
  auto size = pool.workers.size();
  int changes = pool.changes;
  CHECK(size >= 2);
  CHECK(size <= 3);
  pool.run(60s, 30);
  CHECK(pool.workers.size() == size);
  CHECK(pool.changes == changes);
  CHECK(pool.worst_wait < 1s);
}
