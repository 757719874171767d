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

/// Reads a secret file (a TLS private key) under the rules of
/// `read_token_file`, as it is, at most `max_bytes` long.
caf::expected<std::string> read_secret_file(const std::string& path, const std::string& key,
                                            std::size_t max_bytes);

/// Reads a file that decides who is trusted (a certificate, a CA) and is
/// not secret: it must sit where no other user can replace it and be at most
/// `max_bytes` long; otherwise `bad_config` naming `key`.
caf::expected<std::string> read_trusted_file(const std::string& path, const std::string& key,
                                             std::size_t max_bytes);

} // namespace snakepit
