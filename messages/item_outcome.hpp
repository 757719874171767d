#pragma once

#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

#include "snakepit/messages/value_inspect.hpp"

namespace snakepit {

/// One argument set's outcome in a map request (`execute_request::items`):
/// what the tool returned, or why this item failed (the others went on).
struct item_outcome {
  value result;
  /// Set when the item failed: `describe(error)` gives kind, message, Python
  /// type and traceback, as for a call.
  caf::error error;
  /// Wall-clock time the tool spent on this item.
  caf::timespan python_wall{0};

  bool ok() const { return !error; }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_outcome& x) {
  return f(caf::meta::type_name("snakepit::item_outcome"), x.result, x.error, x.python_wall);
}

} // namespace snakepit
