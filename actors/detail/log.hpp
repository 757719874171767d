#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

#include "snakepit/actors/log.hpp"

namespace snakepit::detail {

/// Hands a formatted line to the sink; callers have checked the level.
/// `component` is the source name split by the rules in log.hpp.
void emit_log(log_level level, std::string_view component, std::string_view message);

/// Below the level this costs one relaxed atomic load: no formatting.
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

/// Marks `name` as a pool's in the logs (`pool=NAME` rather than
/// `component=NAME`) while it lives: a pool holds one for its lifetime.
/// Counted, so that pools of one name (in several actor systems) do not
/// unmark each other.
class log_pool_name {
public:
  log_pool_name() = default;
  explicit log_pool_name(std::string name);
  log_pool_name(log_pool_name&& other) noexcept;
  log_pool_name& operator=(log_pool_name&& other) noexcept;
  ~log_pool_name();

private:
  /// Empty: marks nothing.
  std::string name_;
};

/// A line a worker process wrote; logged at info under the worker's id, with
/// the stream ("stdout" or "stderr") as a field of its own.
void log_worker_output(std::string_view worker, bool is_stderr, std::string_view line);

} // namespace snakepit::detail
