#pragma once

#include <string_view>

#include <fmt/format.h>

#include "snakepit/actors/log.hpp"

namespace snakepit::detail {

void emit_log(log_level level, std::string_view component, std::string_view message);

template <class... Ts>
void log_at(log_level level, std::string_view component,
            fmt::format_string<Ts...> format, Ts&&... xs) {
  if (level < current_log_level())
    return;
  emit_log(level, component, fmt::format(format, std::forward<Ts>(xs)...));
}

template <class... Ts>
void log_debug(std::string_view c, fmt::format_string<Ts...> f, Ts&&... xs) {
  log_at(log_level::debug, c, f, std::forward<Ts>(xs)...);
}
template <class... Ts>
void log_info(std::string_view c, fmt::format_string<Ts...> f, Ts&&... xs) {
  log_at(log_level::info, c, f, std::forward<Ts>(xs)...);
}
template <class... Ts>
void log_warning(std::string_view c, fmt::format_string<Ts...> f, Ts&&... xs) {
  log_at(log_level::warning, c, f, std::forward<Ts>(xs)...);
}
template <class... Ts>
void log_error(std::string_view c, fmt::format_string<Ts...> f, Ts&&... xs) {
  log_at(log_level::error, c, f, std::forward<Ts>(xs)...);
}

/// A line a worker process wrote; logged at info, tagged with the worker.
void log_worker_output(std::string_view worker, bool is_stderr, std::string_view line);

} // namespace snakepit::detail
