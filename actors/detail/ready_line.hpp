#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace snakepit::detail {

/// What a worker process says on its ready fd once (python/snakepit_bridge/worker.py):
/// `{"status": "ready", "python_version": ..., ...}` or `{"status": "error", "message": ...,
/// "python_type": ..., "traceback": ...}`. Fields the host does not read are ignored.
struct ready_line {
  /// "ready"; anything else is a failed start.
  bool ready = false;
  /// A failed start: why (Python's words), its exception type and traceback.
  std::string message;
  std::string python_type;
  std::string traceback;
  /// A ready worker.
  std::string python_version;
  std::string implementation;
  bool gil_enabled = true;
  bool free_threaded = false;
  std::vector<std::string> warnings;
  /// Tools declared `@tool(idempotent=True)` (retried after a worker crash).
  std::vector<std::string> idempotent_tools;
};

/// Reads a ready line; nothing when it is not a JSON object or a field the host reads has the
/// wrong JSON type (then `why` says which). The worker process is not trusted: no input throws.
[[nodiscard]] std::optional<ready_line> parse_ready_line(std::string_view line, std::string& why);

} // namespace snakepit::detail
