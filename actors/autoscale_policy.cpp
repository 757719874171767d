#include "snakepit/actors/autoscale_policy.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace snakepit {

namespace {

long long ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

} // namespace

autoscale_decision autoscale_policy::decide(const autoscale_sample& s) {
  autoscale_decision out;
  if (!settings_.enabled())
    return out;
  auto& cfg = settings_;
  // Busy for a window: tracked whatever happens next.
  bool busy_now = s.capacity > 0
                  && static_cast<double>(s.busy) >= cfg.busy_threshold * s.capacity;
  if (!busy_now)
    busy_since_.reset();
  else if (!busy_since_)
    busy_since_ = s.now;
  auto size = s.ready + s.starting;
  // -- grow ---------------------------------------------------------------
  bool waited = s.queued > 0 && s.oldest_wait >= cfg.scale_up_wait;
  bool busy_long = busy_since_ && s.now - *busy_since_ >= cfg.busy_window;
  bool cooled = !last_up_ || s.now - *last_up_ >= cfg.up_cooldown;
  // Workers still starting will take part of the queue: wait for them
  // rather than overshoot.
  if ((waited || busy_long) && size < cfg.max_size && s.starting == 0 && cooled) {
    std::uint32_t want = 1;
    if (waited) {
      auto per = std::max<std::uint32_t>(s.per_worker_capacity, 1);
      want = std::max<std::uint32_t>(1, (s.queued + per - 1) / per);
    }
    out.grow = std::min({want, cfg.max_step_up, cfg.max_size - size});
    out.reason = waited ? fmt::format("{} queued, the oldest for {} ms (scale_up_wait {} ms)",
                                      s.queued, s.oldest_wait.count(),
                                      cfg.scale_up_wait.count())
                        : fmt::format("{} of {} slots busy for {} ms (busy_threshold {}, "
                                      "busy_window {} ms)",
                                      s.busy, s.capacity, ms(s.now - *busy_since_),
                                      cfg.busy_threshold, cfg.busy_window.count());
    last_up_ = s.now;
    last_change_ = s.now;
    busy_since_.reset();  // a new window starts with the new workers
    return out;
  }
  // -- shrink -------------------------------------------------------------
  // Never while anything waits, grows or drains, and not soon after a change.
  if (s.queued > 0 || s.starting > 0 || s.draining > 0 || s.ready <= cfg.min_size)
    return out;
  if (last_change_ && s.now - *last_change_ < cfg.down_cooldown)
    return out;
  const autoscale_worker* longest = nullptr;
  for (auto& w : s.workers) {
    if (!w.idle_since || w.has_sessions || s.now - *w.idle_since < cfg.idle_timeout)
      continue;
    if (longest == nullptr || *w.idle_since < *longest->idle_since)
      longest = &w;
  }
  if (longest == nullptr)
    return out;
  out.retire = longest->id;
  out.reason = fmt::format("{} idle for {} ms (idle_timeout {} ms)", longest->id,
                           ms(s.now - *longest->idle_since), cfg.idle_timeout.count());
  last_change_ = s.now;
  return out;
}

} // namespace snakepit
