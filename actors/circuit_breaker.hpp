#pragma once

// A pool's circuit breaker over worker crashes. Closed: calls pass; a crash
// is counted, and `threshold` crashes within `window` open it. Open: calls
// are refused (`circuit_open`, with the time left) for `open_time`. Then
// half-open: the next call goes through as the probe and the others are
// refused while it runs; the probe ending without a crash closes the breaker,
// a crash (of the probe or of any call) opens it again. Pure logic: the pool
// (actors/pool_retries.cpp) supplies the clock.

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>

#include <caf/timespan.hpp>

namespace snakepit {

/// A pool's breaker bounds (TOML `breaker_threshold`, `breaker_window_ms`,
/// `breaker_open_ms`).
struct breaker_settings {
  /// Worker crashes within `window` that open the breaker; 0: no breaker.
  std::uint32_t threshold = 5;
  caf::timespan window = std::chrono::seconds{10};
  /// How long it stays open before letting a probe call through.
  caf::timespan open_time = std::chrono::seconds{5};
};

enum class breaker_state : std::uint8_t { closed, open, half_open };

const char* to_cstr(breaker_state x);

class circuit_breaker {
public:
  using clock = std::chrono::steady_clock;

  /// What `admit` says about one call.
  struct admission {
    bool allowed = true;
    /// The call is the half-open breaker's probe: report its end with
    /// `probe_done`.
    bool probe = false;
    /// Refused: when a call may have a chance again.
    caf::timespan retry_after{0};
  };

  explicit circuit_breaker(breaker_settings s = {}) : settings_(s) {
  }

  const breaker_settings& settings() const noexcept {
    return settings_;
  }

  bool enabled() const noexcept {
    return settings_.threshold > 0;
  }

  /// The state at `now` (open turns half-open when its time is up).
  breaker_state state(clock::time_point now) const;

  /// May a call start at `now`? A changed state (open to half-open) goes to
  /// `changed`. Without `may_probe` (a call whose end the pool does not
  /// see, e.g. a stream) it passes only a closed breaker.
  admission admit(clock::time_point now, std::optional<breaker_state>* changed = nullptr,
                  bool may_probe = true);

  /// A worker crashed at `now`; the new state when this changed it.
  std::optional<breaker_state> on_crash(clock::time_point now);

  /// The probe ended at `now`; `crashed`: its worker crashed under it (its
  /// crash is reported by `on_crash` too). The new state when it changed.
  std::optional<breaker_state> probe_done(bool crashed, clock::time_point now);

  /// Crashes counted in the current window.
  std::size_t recent_crashes(clock::time_point now) const;

  /// Times it opened, and calls it refused, since it was made.
  std::uint64_t opened() const noexcept {
    return opened_;
  }
  std::uint64_t refused() const noexcept {
    return refused_;
  }

private:
  void open(clock::time_point now);

  breaker_settings settings_;
  breaker_state state_ = breaker_state::closed;
  std::deque<clock::time_point> crashes_;
  clock::time_point open_until_{};
  bool probe_running_ = false;
  std::uint64_t opened_ = 0;
  std::uint64_t refused_ = 0;
};

} // namespace snakepit
