#pragma once

// Automatic retries of a call whose worker crashed: which failures qualify,
// how many attempts, the back-off between them (with jitter) and the caller's
// deadline. Pure logic: the pool (actors/pool_retries.cpp) supplies the clock
// and the randomness.

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/timespan.hpp>
#include <caf/timestamp.hpp>

#include "snakepit/messages/errc.hpp"

namespace snakepit {

/// A pool's retry bounds (TOML `retry_max_attempts`, `retry_backoff_min_ms`,
/// `retry_backoff_max_ms`).
struct retry_settings {
  /// Attempts in all, the first included, of an idempotent call whose worker
  /// crashed; 1: never retried.
  std::uint32_t max_attempts = 3;
  /// Back-off before the 2nd attempt; it doubles per attempt up to `backoff_max`
  /// and each delay is jittered down to half of it.
  caf::timespan backoff_min = std::chrono::milliseconds{50};
  caf::timespan backoff_max = std::chrono::seconds{1};
};

/// Whether a failure of this kind is a crash: the worker died (or was
/// replaced) under the call, so the call may or may not have run. Only these
/// are retried, never a Python exception, a timeout or a refusal.
bool is_crash_kind(errc code);

/// Delay before attempt `next` (2 for the first retry), for `jitter_unit` in
/// [0, 1): `backoff_min * 2^(next - 2)`, at most `backoff_max`, scaled into
/// [half, whole] of it by the jitter.
caf::timespan retry_backoff(const retry_settings& s, std::uint32_t next, double jitter_unit);

/// What to do after attempt `done` failed with a crash.
struct retry_decision {
  /// Retry after `delay`; otherwise `why_not` says why the crash is final.
  bool retry = false;
  caf::timespan delay{0};
  std::string why_not;
};

/// Retry after attempt `done` (1-based) crashed at `now`, given the caller's
/// `deadline`? Not when the attempts are spent, nor when the back-off would
/// end at or past the deadline (the retry could not run in time).
retry_decision decide_retry(const retry_settings& s, std::uint32_t done, caf::timestamp now,
                            caf::timestamp deadline, double jitter_unit);

} // namespace snakepit
