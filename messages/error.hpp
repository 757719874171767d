#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>

#include "snakepit/messages/errc.hpp"

// In-process, a snakepit failure travels inside a `caf::error` of category
// `snakepit` whose context is (message, python_type, traceback).

namespace snakepit {

/// The CAF error category of snakepit errors.
constexpr caf::atom_value error_category = caf::atom("snakepit");

/// A typed error without details.
caf::error make_error(errc code);

/// A typed error with a message for the caller (what happened, what to do).
caf::error make_error(errc code, std::string message);

/// A typed error from Python, with the exception type and traceback.
caf::error make_error(errc code, std::string message, std::string python_type,
                      std::string traceback);

/// The `caf::error` an `error_info` stands for (its code and details).
caf::error make_error(const error_info& info);

/// Reads a `caf::error` returned by a pool, worker or supervisor.
error_info describe(const caf::error& err);

/// True when `err` is a snakepit error with this code.
bool is(const caf::error& err, errc code);

} // namespace snakepit
