#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace snakepit {

/// Severity of a log line.
enum class log_level { debug, info, warning, error, off };

/// Parses "debug", "info", "warning" (or "warn"), "error", "off".
std::optional<log_level> parse_log_level(std::string_view name);

/// "debug", "info", "warning", "error" or "off".
std::string_view to_string(log_level level);

/// Lines below this level are dropped. Default: info, or $SNAKEPIT_LOG_LEVEL.
void set_log_level(log_level level);
log_level current_log_level();

/// How the default sink writes a line on stderr.
enum class log_format {
  /// logfmt: `2026-11-27T10:50:58.123Z info    pool=demo worker=w-2 msg="ready (pid 7)"`.
  text,
  /// One JSON object per line:
  /// `{"ts":"2026-11-27T10:50:58.123Z","level":"info","pool":"demo","worker":"w-2","msg":"..."}`.
  json,
};

/// Parses "text" or "json".
std::optional<log_format> parse_log_format(std::string_view name);

/// "text" or "json".
std::string_view to_string(log_format format);

/// Default: text, or $SNAKEPIT_LOG_FORMAT.
void set_log_format(log_format format);
log_format current_log_format();

/// One log line, split into fields. The views are valid only during the sink
/// call; copy what you keep.
///
/// Code logs under one name, its *source*, which is split as follows:
/// - `POOL/workers` (a pool's worker supervisor): pool=POOL, component=workers;
/// - `POOL/ID` (a worker): pool=POOL, worker=ID, e.g. "demo/w-2";
/// - the name of a running pool: pool=NAME;
/// - any other NAME ("snakepit", "telemetry", a supervisor): component=NAME.
/// Empty fields are left out of formatted lines.
struct log_record {
  log_level level = log_level::info;
  std::chrono::system_clock::time_point time;
  /// The name the line was logged under, as `log_sink` receives it.
  std::string_view source;
  std::string_view pool;
  /// A worker's id within its pool ("w-2").
  std::string_view worker;
  /// What logged when it is neither a pool nor a worker ("snakepit").
  std::string_view component;
  /// "stdout" or "stderr" for a line a worker process wrote, else empty.
  std::string_view stream;
  std::string_view message;
};

/// `record` as one line in `format`, without the trailing newline. Values are
/// escaped so that a message with newlines or quotes stays one parseable line.
std::string format_log_record(const log_record& record, log_format format);

/// Receives every line at or above the level, raw: `component` is the source
/// ("demo/w-2") and a worker's output arrives as "stderr | LINE". Kept for
/// existing users; new code should prefer `log_record_sink`.
using log_sink = std::function<void(log_level, std::string_view component,
                                    std::string_view message)>;

/// Receives every line at or above the level as a structured record.
using log_record_sink = std::function<void(const log_record&)>;

/// There is one sink at a time: setting either kind replaces the other, and an
/// empty function restores the default (one line each on stderr, in the current
/// format). Sinks are called one at a time, from any thread; a sink must not log.
void set_log_sink(log_sink sink);
void set_log_record_sink(log_record_sink sink);

} // namespace snakepit
