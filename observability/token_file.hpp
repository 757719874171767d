#pragma once

#include <string>

#include <caf/expected.hpp>

namespace snakepit {

/// Longest token a token file may hold.
inline constexpr std::size_t max_token_bytes = 4096;

/// Reads a bearer token from `path`: the file's contents without surrounding
/// whitespace. The file is a secret: it must belong to us (or root), be
/// readable and writable by nobody else, and sit where no other user can
/// replace it; otherwise, or when it is empty or over `max_token_bytes`, the
/// answer is `bad_config` naming `key` and what to fix.
caf::expected<std::string> read_token_file(const std::string& path, const std::string& key);

} // namespace snakepit
