#include "snakepit/supervision/restart_intensity.hpp"

#include <algorithm>

namespace snakepit {

void restart_window::expire(clock::time_point now) {
  while (!times_.empty() && now - times_.front() > limits_.period)
    times_.pop_front();
}

bool restart_window::record(clock::time_point now) {
  expire(now);
  times_.push_back(now);
  return times_.size() <= limits_.max_restarts;
}

std::size_t restart_window::count(clock::time_point now) {
  expire(now);
  return times_.size();
}

caf::timespan restart_backoff::delay(std::size_t nth, double jitter_unit) const {
  if (nth <= 1 || max.count() <= 0)
    return caf::timespan{0};
  auto base = min;
  for (std::size_t i = 2; i < nth && base < max; ++i)
    base *= 2;
  base = std::min(base, max);
  // jitter_unit in [0, 1) maps to a factor in [0.8, 1.2).
  auto factor = 0.8 + 0.4 * std::clamp(jitter_unit, 0.0, 1.0);
  return caf::timespan{static_cast<caf::timespan::rep>(base.count() * factor)};
}

} // namespace snakepit
