#pragma once

// How CAF serializes `tool_spec` and `parameter_spec`.

#include <caf/meta/type_name.hpp>

#include "snakepit/messages/tool_spec.hpp"
#include "snakepit/messages/value_inspect.hpp"

namespace snakepit {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, parameter_spec& x) {
  return f(caf::meta::type_name("snakepit::parameter_spec"), x.name, x.type, x.required,
           x.default_value, x.description);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tool_spec& x) {
  return f(caf::meta::type_name("snakepit::tool_spec"), x.name, x.description, x.parameters,
           x.returns, x.streaming, x.idempotent);
}

} // namespace snakepit
