#include "snakepit/actors/log.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "snakepit/actors/detail/log.hpp"

namespace snakepit {

namespace {

log_level initial_level() {
  if (auto* env = std::getenv("SNAKEPIT_LOG_LEVEL"); env && *env)
    if (auto level = parse_log_level(env))
      return *level;
  return log_level::info;
}

std::atomic<log_level>& level_ref() {
  static std::atomic<log_level> level{initial_level()};
  return level;
}

std::mutex& sink_mtx() {
  static std::mutex mtx;
  return mtx;
}

log_sink& sink_ref() {
  static log_sink sink;
  return sink;
}

const char* name_of(log_level level) {
  switch (level) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warning: return "warning";
    case log_level::error: return "error";
    default: return "off";
  }
}

} // namespace

std::optional<log_level> parse_log_level(std::string_view name) {
  for (auto level : {log_level::debug, log_level::info, log_level::warning,
                     log_level::error, log_level::off})
    if (name == name_of(level))
      return level;
  if (name == "warn")
    return log_level::warning;
  return std::nullopt;
}

void set_log_level(log_level level) {
  level_ref() = level;
}

log_level current_log_level() {
  return level_ref().load(std::memory_order_relaxed);
}

void set_log_sink(log_sink sink) {
  std::lock_guard<std::mutex> guard{sink_mtx()};
  sink_ref() = std::move(sink);
}

namespace detail {

void emit_log(log_level level, std::string_view component, std::string_view message) {
  std::lock_guard<std::mutex> guard{sink_mtx()};
  if (auto& sink = sink_ref()) {
    sink(level, component, message);
    return;
  }
  std::string line = fmt::format("snakepit {:7} [{}] {}\n", name_of(level), component,
                                 message);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

void log_worker_output(std::string_view worker, bool is_stderr, std::string_view line) {
  if (log_level::info < current_log_level())
    return;
  emit_log(log_level::info, worker,
           fmt::format("{} | {}", is_stderr ? "stderr" : "stdout", line));
}

} // namespace detail

} // namespace snakepit
