#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/expected.hpp>

namespace snakepit {

/// How `snakepit inspect` and `diagnose` reach a running `snakepit run`: its
/// control endpoint's address and token, in a 0600 file of the run registry
/// directory (`<dir>/<pid>.control`), removed when the run ends. The token
/// keeps other local users out although the endpoint is on 127.0.0.1.
struct control_info {
  std::int32_t pid = 0;
  /// Start time of the process (ticks since boot): a reused pid is not it.
  std::uint64_t start_time = 0;
  std::string tree;
  std::string file;
  std::string url;
  std::string token;
  /// Where its gateway listens ("unix:/..." or "host:port"); empty: none.
  std::string gateway;
};

/// Writes `info` as `<dir>/<pid>.control`, readable by its owner only.
caf::expected<std::string> write_control_file(const std::string& dir, const control_info& info);

/// The control files of live runs in `dir` (stale ones are removed).
std::vector<control_info> find_running_trees(const std::string& dir);

/// A random token (hex) for a control endpoint.
std::string make_control_token();

} // namespace snakepit
