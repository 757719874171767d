#pragma once

// How the command line talks to its user: results on stdout, errors as one
// JSON object on stderr, operator lines prefixed "snakepit: " on stderr.

#include <iostream>
#include <string>

#include <caf/error.hpp>

#include "snakepit/messages/error.hpp"

namespace snakepit::cli {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;

inline void print_error(const error_info& info) {
  std::cerr << info.to_json() << std::endl;
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
