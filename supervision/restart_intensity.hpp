#pragma once

#include <chrono>
#include <cstdint>
#include <deque>

#include <caf/timespan.hpp>

namespace snakepit {

/// OTP's restart intensity: more than `max_restarts` restarts within any
/// `period` makes a supervisor give up. Defaults: 3 within 5 s (Elixir's).
struct restart_intensity {
  std::uint32_t max_restarts = 3;
  caf::timespan period = std::chrono::seconds{5};
};

/// A true sliding window of restart times for one supervisor.
class restart_window {
public:
  using clock = std::chrono::steady_clock;

  explicit restart_window(restart_intensity limits) : limits_(limits) {
    // nop
  }

  /// Records a restart at `now`; false when it exceeds the intensity.
  [[nodiscard]] bool record(clock::time_point now);

  /// Restarts inside the window ending at `now`.
  std::size_t count(clock::time_point now);

  const restart_intensity& limits() const noexcept {
    return limits_;
  }

private:
  void expire(clock::time_point now);

  restart_intensity limits_;
  std::deque<clock::time_point> times_;
};

/// Delay before a restart, so a child that dies at start does not spin. The
/// supervisor counts only failures at start (before the child was ready)
/// within the intensity period: none, and the restart is immediate; then
/// `min` doubling up to `max`, with +-20% jitter. Both zero: restart at once.
struct restart_backoff {
  caf::timespan min = std::chrono::milliseconds{100};
  caf::timespan max = std::chrono::seconds{2};

  /// Delay for the `nth` restart within the window (1-based).
  caf::timespan delay(std::size_t nth, double jitter_unit) const;
};

} // namespace snakepit
