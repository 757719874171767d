#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace snakepit::detail {

/// Dotted parts one key may have (`a.b.c` has 3), and arrays and inline
/// tables nested in one value, at most: toml++ parses both recursively, so
/// a hostile file with ~40,000 of either overflowed the stack.
inline constexpr std::size_t max_toml_key_parts = 64;
/// Largest tree file read at all: a tree file is a few kilobytes; refuse
/// anything absurd before parsing it.
inline constexpr std::uintmax_t max_tree_file_bytes = 16 * 1024 * 1024;
inline constexpr std::size_t max_toml_value_depth = 64;

/// The whole of a tree file, at most `max_tree_file_bytes`; none, with
/// `why`, when it cannot be read or is larger.
std::optional<std::string> read_tree_file(const std::string& path, std::string& why);

/// A place in the text and what is wrong there.
struct toml_limit_problem {
  int line = 0;
  int column = 0;
  std::string message;
};

/// Scans `text` (without parsing it) for keys and values that go past the
/// limits above; the first such place, or none. Strings and comments are
/// skipped, so dots and brackets inside them do not count.
std::optional<toml_limit_problem> check_toml_limits(std::string_view text);

} // namespace snakepit::detail
