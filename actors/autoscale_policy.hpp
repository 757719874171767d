#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace snakepit {

/// When a pool grows and shrinks (`min_size`, `max_size`, docs/configuration.md).
struct autoscale_settings {
  /// Workers at least and at most; autoscaling is on when they differ.
  std::uint32_t min_size = 0;
  std::uint32_t max_size = 0;
  /// Grow when the oldest queued request has waited this long.
  std::chrono::milliseconds scale_up_wait{200};
  /// ... or when busy slots / capacity stays at or above this ...
  double busy_threshold = 0.9;
  /// ... for this long.
  std::chrono::milliseconds busy_window{5000};
  /// Shrink by a worker idle (no call in flight, no session) this long.
  std::chrono::milliseconds idle_timeout{60000};
  /// At most this many workers added in one step.
  std::uint32_t max_step_up = 4;
  /// Rate limits: the least time between two growths, and between any
  /// change and a shrink (hysteresis: a pool that just grew does not shrink
  /// at once, nor shrink twice in a row quickly).
  std::chrono::milliseconds up_cooldown{1000};
  std::chrono::milliseconds down_cooldown{10000};

  [[nodiscard]] bool enabled() const noexcept {
    return max_size > min_size;
  }
};

/// A worker as the policy sees it.
struct autoscale_worker {
  std::string id;
  /// Since when it has had no call in flight (none: it has one now).
  std::optional<std::chrono::steady_clock::time_point> idle_since;
  /// It holds sessions: never retired by autoscaling.
  bool has_sessions = false;
};

/// The pool at one instant.
struct autoscale_sample {
  std::chrono::steady_clock::time_point now;
  /// Workers ready and serving (not draining).
  std::uint32_t ready = 0;
  /// Workers asked for and not ready yet (growth under way).
  std::uint32_t starting = 0;
  /// Workers draining (shrinks and recycles under way).
  std::uint32_t draining = 0;
  /// Calls the ready workers can run at once, and run now.
  std::uint32_t capacity = 0;
  std::uint32_t busy = 0;
  /// Requests waiting in the pool's queue, and the oldest one's wait.
  std::uint32_t queued = 0;
  std::chrono::milliseconds oldest_wait{0};
  /// Calls one worker runs at once (1 in the process profile).
  std::uint32_t per_worker_capacity = 1;
  std::vector<autoscale_worker> workers;
};

/// What to do now: start `grow` workers, or retire `retire`.
struct autoscale_decision {
  std::uint32_t grow = 0;
  std::optional<std::string> retire;
  /// Why, for events and logs ("queue wait 300 ms", "idle 61 s").
  std::string reason;

  [[nodiscard]] bool none() const noexcept {
    return grow == 0 && !retire;
  }
};

/// The decision logic of autoscaling, apart from the pool so that it is
/// tested against recorded load traces. Feed it a sample at a steady pace
/// (the pool does every 100 ms); it remembers how long the pool has been
/// busy and when it last changed size.
class autoscale_policy {
public:
  explicit autoscale_policy(autoscale_settings settings) : settings_(settings) {
  }

  [[nodiscard]] const autoscale_settings& settings() const noexcept {
    return settings_;
  }

  autoscale_decision decide(const autoscale_sample& sample);

private:
  using time_point = std::chrono::steady_clock::time_point;

  autoscale_settings settings_;
  /// Since when busy / capacity has been at or above the threshold.
  std::optional<time_point> busy_since_;
  std::optional<time_point> last_up_;
  std::optional<time_point> last_change_;
};

} // namespace snakepit
