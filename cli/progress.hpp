#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace snakepit::cli {

/// Shows workers ready / total per pool on stderr while pools start: one
/// line redrawn in place on a terminal, otherwise a line at every quarter
/// and when a pool is complete. Listens on the telemetry bus while alive.
class startup_progress {
public:
  /// `sizes`: pool name to its number of workers. Pools of fewer than
  /// `min_workers` workers show nothing (they start in a blink).
  explicit startup_progress(std::map<std::string, std::uint32_t> sizes,
                            std::uint32_t min_workers = 4);
  ~startup_progress();

  startup_progress(const startup_progress&) = delete;
  startup_progress& operator=(const startup_progress&) = delete;

  /// Ends the display (a finished terminal line gets its newline).
  void finish();

private:
  struct impl;
  std::shared_ptr<impl> impl_;
  std::uint64_t handler_ = 0;
};

} // namespace snakepit::cli
