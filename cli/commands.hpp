#pragma once

#include <cstdint>
#include <string>

namespace snakepit::cli {

/// Which running tree `inspect` and `diagnose` talk to.
struct attach_options {
  /// The `snakepit run` process; 0: the only one running.
  std::int32_t pid = 0;
  /// A status endpoint to read instead, e.g. a tree's metrics endpoint
  /// "http://127.0.0.1:9464" (no token).
  std::string url;
};

struct inspect_options {
  attach_options attach;
  bool json = false;
  /// Seconds between refreshes; 0: print once.
  double watch = 0;
};

/// `snakepit inspect`: per pool profile, workers, capacity, load, queue,
/// requests, failures, restarts; per worker pid, age, RSS, Python, GIL.
int run_inspect(const inspect_options& opts);

/// `snakepit ls`: the running trees of this user, with their gateways.
int run_list_trees(bool json);

/// `snakepit diagnose`: the machine, each pool's utilisation and saturation,
/// and what to change.
int run_diagnose(const attach_options& opts, bool json);

} // namespace snakepit::cli
