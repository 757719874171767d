#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace snakepit {

/// A record of this host's worker processes and runtime directory in a file
/// of the registry directory (`$SNAKEPIT_RUNTIME_PARENT/snakepit-runs-<uid>`,
/// default `/tmp/snakepit-runs-<uid>`), so that a later host can find and kill
/// workers left by a dead earlier run and remove its runtime directory.
/// (Workers already die with their host through the parent-death signal and
/// the lifeline pipe; the registry covers what those cannot, e.g. a worker
/// that was stopped or re-parented, and the sockets a SIGKILLed host leaves.)
///
/// Nothing in the registry is taken on trust: the directory and every file in
/// it must be ours (owner, mode, no symlinks), and a recorded process is
/// killed only when it is provably one of our workers (see `is_our_worker`).
/// A registry directory that fails these checks is not used at all: this run
/// logs a warning and keeps no records.
class run_registry {
public:
  /// The environment variable every worker carries, naming its host's run
  /// (`<host pid>-<host start time>`): the marker `is_our_worker` checks.
  static constexpr const char* run_id_env = "SNAKEPIT_RUN_ID";

  /// This process's registry (created on first use, which also cleans up
  /// dead runs); its file is removed at normal exit.
  static run_registry& instance();

  /// A worker process started / ended. Thread-safe; cheap appends.
  void record_spawn(int pid);
  void record_exit(int pid);

  /// This run's private runtime directory, removed by a later host if this
  /// one dies without removing it.
  void record_runtime_dir(const std::string& path);

  /// The registry directory.
  [[nodiscard]] const std::string& dir() const noexcept {
    return dir_;
  }

  /// Whether the registry directory passed the ownership checks (otherwise
  /// nothing is recorded and `snakepit inspect` cannot find this run).
  [[nodiscard]] bool trusted() const noexcept {
    return fd_ >= 0;
  }

  /// The value of `run_id_env` for this host's workers (does not create the
  /// registry).
  static const std::string& this_run_id();

  /// Removes this run's file; later records are dropped (at exit).
  void close();

private:
  run_registry();

  void append(const std::string& line);

  /// Rewrites the file with only what is still true (live workers, runtime
  /// directories) once it has grown past `compact_after_bytes`, so that a
  /// long-lived host that recycles workers often never outgrows what a later
  /// cleanup will read.
  void compact_if_large();

  std::string dir_;
  std::string file_;
  std::string header_;
  std::vector<std::string> runtime_dirs_;
  std::map<int, std::uint64_t> live_;
  std::size_t file_bytes_ = 0;
  int fd_ = -1;    // the registry directory, when trusted
  int file_fd_ = -1;
  bool closed_ = false;
};

/// Kills the recorded, still-running workers of every run in `dir` whose
/// host is gone, removes their runtime directories and those runs' files.
/// Does nothing (with a warning) when `dir` is not trusted; skips files that
/// are not. Returns how many processes it killed.
std::size_t cleanup_dead_runs(const std::string& dir);

/// Whether `pid` is a worker of the run `run_id` that started at `start_time`:
/// the pid is above 1, its start time matches, it runs as our uid, and its
/// environment carries `run_id_env=run_id`. Only such a process (and its
/// process group, when it leads one) is ever killed by the cleanup.
bool is_our_worker(int pid, std::uint64_t start_time, const std::string& run_id);

/// The start time of a process (clock ticks since boot, field 22 of
/// /proc/PID/stat); 0 when the process does not exist.
std::uint64_t process_start_time(int pid);

} // namespace snakepit
