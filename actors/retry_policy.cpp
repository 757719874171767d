#include "snakepit/actors/retry_policy.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace snakepit {

bool is_crash_kind(errc code) {
  return code == errc::worker_crashed || code == errc::worker_replaced;
}

caf::timespan retry_backoff(const retry_settings& s, std::uint32_t next, double jitter_unit) {
  auto delay = s.backoff_min;
  for (std::uint32_t i = 2; i < next && delay < s.backoff_max; ++i)
    delay *= 2;
  delay = std::min(delay, s.backoff_max);
  jitter_unit = std::clamp(jitter_unit, 0.0, 1.0);
  auto half = delay / 2;
  return half + caf::timespan{static_cast<caf::timespan::rep>(
                  static_cast<double>((delay - half).count()) * jitter_unit)};
}

retry_decision decide_retry(const retry_settings& s, std::uint32_t done, caf::timestamp now,
                            caf::timestamp deadline, double jitter_unit) {
  retry_decision out;
  if (done >= s.max_attempts) {
    out.why_not = s.max_attempts <= 1
                    ? std::string{"retries are off (retry_max_attempts = 1)"}
                    : fmt::format("all {} attempts (retry_max_attempts) crashed",
                                  s.max_attempts);
    return out;
  }
  auto delay = retry_backoff(s, done + 1, jitter_unit);
  if (now + delay >= deadline) {
    out.why_not = fmt::format("no time for attempt {} before the call's deadline "
                              "(back-off {} ms)",
                              done + 1,
                              std::chrono::duration_cast<std::chrono::milliseconds>(delay)
                                .count());
    return out;
  }
  out.retry = true;
  out.delay = delay;
  return out;
}

} // namespace snakepit
