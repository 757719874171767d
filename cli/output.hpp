#pragma once

// How the command line talks to its user: results on stdout, an error on
// stderr (one JSON object for programs; for a person at a terminal, one
// readable message with the Python traceback as Python prints it), operator
// lines prefixed "snakepit: " on stderr.

#include <unistd.h>

#include <iostream>
#include <string>

#include <caf/error.hpp>

#include "snakepit/messages/error.hpp"

namespace snakepit::cli {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;

/// Whether errors go out as JSON: when stderr is not a terminal (a program
/// reads it), or when a command's --json asks. Decided once, at the first error.
inline bool& errors_as_json() {
  static bool json = ::isatty(STDERR_FILENO) != 1;
  return json;
}

inline void print_error(const error_info& info) {
  if (errors_as_json()) {
    std::cerr << info.to_json() << std::endl;
    return;
  }
  std::cerr << "snakepit: error: " << info.kind << ": " << info.message;
  if (!info.python_type.empty() && info.traceback.empty())
    std::cerr << " (" << info.python_type << ")";
  std::cerr << '\n';
  if (!info.traceback.empty()) {
    // Python's own text, which ends with the exception's type and message.
    std::cerr << info.traceback;
    if (info.traceback.back() != '\n')
      std::cerr << '\n';
  }
  std::cerr << std::flush;
}

inline void print_error(const caf::error& err) {
  print_error(describe(err));
}

inline void print_error(std::string kind, std::string message) {
  error_info info;
  info.kind = std::move(kind);
  info.message = std::move(message);
  print_error(info);
}

/// A line for the operator, on stderr (stdout stays for results).
inline void log_line(const std::string& text) {
  std::cerr << "snakepit: " << text << std::endl;
}

} // namespace snakepit::cli
