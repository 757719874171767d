#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <caf/expected.hpp>

namespace snakepit::detail {

/// How a program run by `run_captured` ended.
struct captured_run {
  /// Its exit status; 128 + the signal when a signal ended it.
  int exit_code = 0;
  /// What it wrote (see `with_stdout`), at most the bytes asked for.
  std::string output;
};

/// Runs `executable` with `args` (no shell: they reach it as they are) in
/// `python_working_dir`, stdin from /dev/null, and waits for it. Keeps its
/// stderr, and its stdout too with `with_stdout` (else stdout goes to
/// /dev/null), up to `max_bytes`. Blocks: for start-up checks and the
/// command line, never an actor. Fails when it cannot be started.
caf::expected<captured_run> run_captured(const std::string& executable,
                                         const std::vector<std::string>& args,
                                         bool with_stdout, std::size_t max_bytes);

/// The last non-empty line of `text` (trailing newlines dropped).
std::string last_line(std::string text);

} // namespace snakepit::detail
