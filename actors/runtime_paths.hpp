#pragma once

#include <string>

namespace snakepit {

/// The private runtime directory of this host process (mode 0700, short path
/// under $SNAKEPIT_RUNTIME_PARENT or /tmp), created on first use and removed
/// at exit. Worker sockets live here: unix socket paths are limited to 107 bytes.
const std::string& runtime_dir();

/// A fresh socket path in the runtime directory, unique within this process.
std::string next_socket_path();

/// The directory holding the `snakepit_bridge` Python package:
/// $SNAKEPIT_PYTHON_PACKAGE_DIR, else the installed copy next to the library,
/// else the source tree the library was built from.
std::string python_package_dir();

} // namespace snakepit
