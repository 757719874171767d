#pragma once

#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "snakepit/messages/value.hpp"

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
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, parameter_spec& x) {
  return f(caf::meta::type_name("snakepit::parameter_spec"), x.name, x.type, x.required,
           x.default_value, x.description);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tool_spec& x) {
  return f(caf::meta::type_name("snakepit::tool_spec"), x.name, x.description, x.parameters,
           x.returns, x.streaming);
}

} // namespace snakepit
