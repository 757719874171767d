#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace snakepit::detail {

/// Dotted parts one key may have (`a.b.c` has 3), and arrays and inline
/// tables nested in one value, at most: toml++ parses both recursively, so
/// a hostile file with ~40,000 of either overflowed the stack.
inline constexpr std::size_t max_toml_key_parts = 64;
inline constexpr std::size_t max_toml_value_depth = 64;

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
