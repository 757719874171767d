#include "snakepit/actors/detail/pipelining_policy.hpp"

namespace snakepit::detail {

pipelining_policy::pipelining_policy(std::uint32_t depth, caf::timespan budget)
  : depth_(depth), budget_(budget) {
}

void pipelining_policy::observe(const std::string& tool, caf::timespan wall) {
  if (!enabled() || tool.empty() || wall.count() <= 0)
    return;
  auto i = estimates_.find(tool);
  if (i == estimates_.end()) {
    if (estimates_.size() >= max_tools)
      estimates_.erase(estimates_.begin());
    estimates_.emplace(tool, wall);
    return;
  }
  // A slow call counts at once (no call queues behind its like); fast ones
  // pull the estimate down gradually (moving average, 1/4 weight).
  if (wall > budget_ || wall > i->second)
    i->second = std::max(wall, (i->second * 3 + wall) / 4);
  else
    i->second = (i->second * 3 + wall) / 4;
}

std::optional<caf::timespan> pipelining_policy::estimate(const std::string& tool) const {
  auto i = estimates_.find(tool);
  if (i == estimates_.end())
    return std::nullopt;
  return i->second;
}

bool pipelining_policy::admits(const std::string& tool, std::uint32_t queued,
                               caf::timespan work) const {
  if (!enabled() || queued >= depth_)
    return false;
  auto expected = estimate(tool);
  return expected && *expected <= budget_ && work + *expected <= budget_;
}

} // namespace snakepit::detail
