#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace snakepit {

/// A record of this host's worker processes in a file of the registry
/// directory (`$SNAKEPIT_RUNTIME_PARENT/snakepit-runs`, default
/// `/tmp/snakepit-runs`), so that a later host can find and kill workers left
/// by a dead earlier run. Processes are identified by pid *and* start time,
/// so a pid reused by an unrelated process is never killed. (Workers already
/// die with their host through the parent-death signal and the lifeline
/// pipe; the registry covers what those cannot, e.g. a worker that was
/// stopped or re-parented.)
class run_registry {
public:
  /// This process's registry (created on first use, which also cleans up
  /// dead runs); its file is removed at normal exit.
  static run_registry& instance();

  /// A worker process started / ended. Thread-safe; cheap appends.
  void record_spawn(int pid);
  void record_exit(int pid);

  /// The registry directory.
  const std::string& dir() const noexcept {
    return dir_;
  }

  /// Removes this run's file; later records are dropped (at exit).
  void close();

private:
  run_registry();

  std::string dir_;
  std::string file_;
  bool closed_ = false;
};

/// Kills the recorded, still-running workers of every run in `dir` whose
/// host is gone, and removes those runs' files. Returns how many processes it
/// killed.
std::size_t cleanup_dead_runs(const std::string& dir);

/// The start time of a process (clock ticks since boot, field 22 of
/// /proc/PID/stat); 0 when the process does not exist.
std::uint64_t process_start_time(int pid);

} // namespace snakepit
