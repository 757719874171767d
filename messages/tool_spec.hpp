#pragma once

#include <string>
#include <vector>

#include "snakepit/messages/value.hpp"

// Free of CAF (the client lists tools too); tool_spec_inspect.hpp serializes it.

namespace snakepit {

/// One parameter of a Python tool, as its adapter declares it.
struct parameter_spec {
  std::string name;
  /// "int", "float", "str", "bool", "bytes", "list", "dict", "any", "list[int]", ...
  std::string type;
  bool required = false;
  /// Its default when not required (null when none can be sent).
  value default_value;
  std::string description;
};

/// A tool of a pool's adapter: what `(list_tools_atom)` answers.
struct tool_spec {
  std::string name;
  std::string description;
  std::vector<parameter_spec> parameters;
  /// Type of the result, spelled as parameter types.
  std::string returns;
  /// A generator: call it with `execute_stream_atom`.
  bool streaming = false;
  /// Safe to run twice (`@tool(idempotent=True)`): a call whose worker
  /// crashes is retried.
  bool idempotent = false;
};

} // namespace snakepit
