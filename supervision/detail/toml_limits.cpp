#include "snakepit/supervision/detail/toml_limits.hpp"

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <system_error>
#include <vector>

#include <fmt/format.h>

namespace snakepit::detail {

std::optional<std::string> read_tree_file(const std::string& path, std::string& why) {
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (ec) {
    why = ec.message();
    return std::nullopt;
  }
  if (std::filesystem::is_directory(status)) {
    why = "is a directory";
    return std::nullopt;
  }
  auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > max_tree_file_bytes) {
    why = fmt::format("the file has {} bytes; a tree file may have at most {}", size,
                      max_tree_file_bytes);
    return std::nullopt;
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f{std::fopen(path.c_str(), "rb"),
                                                    &std::fclose};
  if (!f) {
    why = std::generic_category().message(errno);
    return std::nullopt;
  }
  std::string text;
  char buf[8192];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), f.get())) > 0) {
    text.append(buf, n);
    if (text.size() > max_tree_file_bytes) {
      why = fmt::format("the file has more than {} bytes", max_tree_file_bytes);
      return std::nullopt;
    }
  }
  if (std::ferror(f.get())) {
    why = "read error";
    return std::nullopt;
  }
  return text;
}

std::optional<toml_limit_problem> check_toml_limits(std::string_view text) {
  int line = 1;
  int column = 0;
  // Nesting of the value being read: '[' arrays, '{' inline tables.
  std::vector<char> nesting;
  // Reading a key (a header, the start of a line, after '{' or ',' in an
  // inline table) and how many parts it has so far.
  bool in_key = true;
  bool in_header = false;
  std::size_t parts = 1;
  auto problem = [&](std::string message) {
    return toml_limit_problem{line, column, std::move(message)};
  };
  auto starts_with = [&](std::size_t i, std::string_view s) {
    return text.substr(i, s.size()) == s;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    ++column;
    if (c == '\n') {
      ++line;
      column = 0;
      if (nesting.empty()) {  // a value or header ends with its line
        in_key = true;
        in_header = false;
        parts = 1;
      }
      continue;
    }
    if (c == '#') {  // a comment: to the end of the line
      while (i + 1 < text.size() && text[i + 1] != '\n')
        ++i;
      continue;
    }
    if (c == '"' || c == '\'') {  // strings: skip their contents
      auto quote = std::string(starts_with(i, std::string(3, c)) ? 3 : 1, c);
      std::size_t j = i + quote.size();
      for (; j < text.size(); ++j) {
        if (text[j] == '\n') {
          ++line;
          column = 0;
        }
        if (c == '"' && text[j] == '\\') {
          ++j;
          continue;
        }
        if (starts_with(j, quote))
          break;
      }
      i = j + quote.size() - 1;
      continue;
    }
    if (in_key) {
      if (c == '[' && nesting.empty() && !in_header && parts == 1) {
        in_header = true;  // [table] or [[array of tables]]
        continue;
      }
      if (c == '.') {
        if (++parts > max_toml_key_parts)
          return problem(fmt::format("a key with more than {} dotted parts",
                                     max_toml_key_parts));
        continue;
      }
      if (c == '=' || (in_header && c == ']')) {
        in_key = false;
        parts = 1;
      }
      continue;
    }
    // A value.
    if (c == '[' || c == '{') {
      nesting.push_back(c);
      if (nesting.size() > max_toml_value_depth)
        return problem(fmt::format("arrays and inline tables nested more than {} deep",
                                   max_toml_value_depth));
      if (c == '{') {
        in_key = true;
        parts = 1;
      }
      continue;
    }
    if ((c == ']' || c == '}') && !nesting.empty()) {
      nesting.pop_back();
      continue;
    }
    if (c == ',' && !nesting.empty() && nesting.back() == '{') {
      in_key = true;
      parts = 1;
    }
  }
  return std::nullopt;
}

} // namespace snakepit::detail
