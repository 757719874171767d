#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>

namespace snakepit {

/// Where snakepit makes its directories: $SNAKEPIT_RUNTIME_PARENT, else /tmp.
std::string runtime_parent();

/// The private runtime directory of this host process (mode 0700, short path
/// under $SNAKEPIT_RUNTIME_PARENT or /tmp), created on first use and removed
/// at exit. Worker sockets live here: unix socket paths are limited to 107 bytes.
const std::string& runtime_dir();

/// Creates the runtime directory now if need be; the error says why it
/// cannot be (e.g. an unsafe SNAKEPIT_RUNTIME_PARENT). Call it before
/// anything that would create it from inside an actor.
caf::error ensure_runtime_dir();

/// A fresh socket path in `dir` (default: the runtime directory), unique
/// within this process.
std::string next_socket_path(const std::string& dir = {});

/// Creates a fresh private subdirectory (mode 0700) of the runtime directory,
/// e.g. for one supervision tree; empty on failure.
std::string make_private_dir(const std::string& prefix);

/// Removes a directory made by `make_private_dir` and the sockets in it.
void remove_private_dir(const std::string& dir);

/// The directory holding the `snakepit_bridge` Python package:
/// $SNAKEPIT_PYTHON_PACKAGE_DIR, else the installed copy next to the library,
/// else the source tree the library was built from.
std::string python_package_dir();

/// Paths of the files in `dir` whose names end with `suffix` (none when
/// `dir` cannot be read).
std::vector<std::string> files_ending_with(const std::string& dir, std::string_view suffix);

} // namespace snakepit
