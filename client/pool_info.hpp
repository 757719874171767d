#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "snakepit/messages/tool_spec.hpp"

namespace snakepit {

/// A pool of a running tree as its gateway lists it (`client::list_pools`).
struct pool_info {
  std::string name;
  /// "starting", "ready", "failed", "stopping" or "down".
  std::string state;
  std::uint32_t size = 0;
  std::uint32_t ready = 0;
  std::uint32_t busy = 0;
  std::uint32_t queued = 0;
  /// "process" or "thread".
  std::string profile;
  /// Dotted path of the adapter class.
  std::string adapter;
  /// The adapter's tools with their parameters (empty while no worker is
  /// ready).
  std::vector<tool_spec> tools;
};

} // namespace snakepit
