#pragma once

#include <functional>
#include <optional>
#include <string_view>

namespace snakepit {

/// Severity of a log line.
enum class log_level { debug, info, warning, error, off };

/// Parses "debug", "info", "warning", "error", "off".
std::optional<log_level> parse_log_level(std::string_view name);

/// Lines below this level are dropped. Default: info, or $SNAKEPIT_LOG_LEVEL.
void set_log_level(log_level level);
log_level current_log_level();

/// Where log lines go (default: one line each on stderr). `component` names
/// the pool or worker, e.g. "demo/w-2". The sink may be called from any thread.
using log_sink = std::function<void(log_level, std::string_view component,
                                    std::string_view message)>;
void set_log_sink(log_sink sink);

} // namespace snakepit
