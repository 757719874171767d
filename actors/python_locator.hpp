#pragma once

#include <string>

#include <caf/expected.hpp>

namespace snakepit {

/// Finds a Python interpreter that can run workers (imports grpc and protobuf).
///
/// `configured` (a path or a command name) wins when set; else $SNAKEPIT_PYTHON;
/// else the first of `python3` on PATH and `/usr/bin/python3` that works.
/// Returns an absolute path, or `errc::startup_failed` saying what each
/// candidate lacked and how to fix it. Blocks for a few tens of milliseconds
/// per candidate on first use (results are cached): call it from a thread of
/// your own, not from inside an actor.
caf::expected<std::string> locate_python(const std::string& configured = {});

} // namespace snakepit
