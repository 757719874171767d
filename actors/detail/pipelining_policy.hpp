#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include <caf/timespan.hpp>

namespace snakepit::detail {

/// Whether the pool may queue one more call on a busy worker (pool keys
/// `pipeline_depth`, `pipeline_budget_ms`).
///
/// A process-profile worker runs one call at a time, so calls only travel in
/// batches if the pool sends a busy worker more. That pays for short tools
/// and hurts slow ones (a call queued behind a slow one waits for it while
/// another worker may be free), so the policy learns each tool's wall time
/// from the replies and lets a worker queue calls only while the expected
/// work on it stays within the budget. A tool not seen yet, or slower than
/// the budget, is never queued behind another call.
class pipelining_policy {
public:
  pipelining_policy() = default;
  pipelining_policy(std::uint32_t depth, caf::timespan budget);

  bool enabled() const { return depth_ > 0 && budget_.count() > 0; }
  std::uint32_t depth() const { return depth_; }

  /// A call of `tool` took `wall` in Python.
  void observe(const std::string& tool, caf::timespan wall);

  /// The expected wall time of a call of `tool`; none before one finished.
  std::optional<caf::timespan> estimate(const std::string& tool) const;

  /// Whether a call of `tool` may queue on a worker that already has
  /// `queued` calls beyond its capacity, expected to take `work` together
  /// (the running calls not counted).
  bool admits(const std::string& tool, std::uint32_t queued, caf::timespan work) const;

  /// Tools remembered at most (the oldest estimate is forgotten past it).
  static constexpr std::size_t max_tools = 4096;

private:
  std::uint32_t depth_ = 0;
  caf::timespan budget_{0};
  std::unordered_map<std::string, caf::timespan> estimates_;
};

} // namespace snakepit::detail
