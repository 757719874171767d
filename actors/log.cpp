#include "snakepit/actors/log.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

#include "snakepit/actors/detail/log.hpp"

namespace snakepit {

namespace {

// -- settings -------------------------------------------------------------------

template <class T, class Parse>
T from_env(const char* name, T fallback, Parse parse) {
  if (auto* env = std::getenv(name); env && *env)
    if (auto x = parse(env))
      return *x;
  return fallback;
}

std::atomic<log_level>& level_ref() {
  static std::atomic<log_level> level{
    from_env("SNAKEPIT_LOG_LEVEL", log_level::info, parse_log_level)};
  return level;
}

std::atomic<log_format>& format_ref() {
  static std::atomic<log_format> format{
    from_env("SNAKEPIT_LOG_FORMAT", log_format::text, parse_log_format)};
  return format;
}

// -- the sink -------------------------------------------------------------------

/// Empty (std::monostate): the default writer on stderr.
using any_sink = std::variant<std::monostate, log_sink, log_record_sink>;

std::mutex& sink_mtx() {
  static std::mutex mtx;
  return mtx;
}

any_sink& sink_ref() {
  static any_sink sink;
  return sink;
}

template <class Sink>
void install(Sink sink) {
  std::lock_guard<std::mutex> guard{sink_mtx()};
  if (sink)
    sink_ref() = std::move(sink);
  else
    sink_ref() = std::monostate{};
}

/// Names of running pools, with how many hold each (guarded by sink_mtx).
/// Never destroyed: a pool may outlive the statics when the program exits.
std::map<std::string, int, std::less<>>& pool_names() {
  static auto* names = new std::map<std::string, int, std::less<>>;
  return *names;
}

// -- fields ---------------------------------------------------------------------

/// The worker supervisor of pool P is named "P/workers" (see pool.cpp).
constexpr std::string_view worker_supervisor = "workers";

/// Splits a source name into pool, worker and component (rules: log.hpp).
/// Call with sink_mtx held.
void split_source(log_record& r) {
  auto source = r.source;
  if (auto slash = source.find('/'); slash != std::string_view::npos) {
    r.pool = source.substr(0, slash);
    auto part = source.substr(slash + 1);
    if (part == worker_supervisor)
      r.component = part;
    else
      r.worker = part;
  } else if (pool_names().count(source) > 0) {
    r.pool = source;
  } else {
    r.component = source;
  }
}

/// `2026-11-27T10:50:58.123Z`.
std::string utc_timestamp(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(ms / 1000);
  auto frac = static_cast<int>(ms % 1000);
  if (frac < 0) { // before 1970: floor, not truncate
    frac += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  auto n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", std::string_view{buf, n}, frac);
}

/// Dumps JSON as one line; bytes that are not UTF-8 (a worker may print
/// anything) become U+FFFD rather than an exception.
template <class Json>
std::string one_line(const Json& x) {
  return x.dump(-1, ' ', false, Json::error_handler_t::replace);
}

/// logfmt quotes a value that is empty or holds a space, `=`, a quote, a
/// backslash, a control character or non-ASCII bytes; anything else stays bare.
bool needs_quotes(std::string_view s) {
  return s.empty() || std::any_of(s.begin(), s.end(), [](char c) {
           auto u = static_cast<unsigned char>(c);
           return u <= ' ' || u >= 0x7f || c == '"' || c == '=' || c == '\\';
         });
}

void append_logfmt_value(std::string& out, std::string_view s) {
  // A quoted logfmt value escapes as a JSON string does.
  out += needs_quotes(s) ? one_line(nlohmann::json(s)) : std::string{s};
}

/// The optional fields, in the order both formats print them.
template <class F>
void for_each_field(const log_record& r, F&& f) {
  std::pair<std::string_view, std::string_view> fields[] = {
    {"pool", r.pool}, {"worker", r.worker}, {"component", r.component}, {"stream", r.stream}};
  for (const auto& [key, x] : fields)
    if (!x.empty())
      f(key, x);
}

std::string format_text(const log_record& r) {
  // Levels padded to the longest ("warning") so that the fields line up.
  auto out = fmt::format("{} {:7}", utc_timestamp(r.time), to_string(r.level));
  auto field = [&out](std::string_view key, std::string_view x) {
    out += ' ';
    out += key;
    out += '=';
    append_logfmt_value(out, x);
  };
  for_each_field(r, field);
  field("msg", r.message);
  return out;
}

std::string format_json(const log_record& r) {
  // ordered_json keeps the fields in a reader's order: time, level, who, what.
  nlohmann::ordered_json obj;
  obj["ts"] = utc_timestamp(r.time);
  obj["level"] = to_string(r.level);
  for_each_field(r, [&obj](std::string_view key, std::string_view x) {
    obj[std::string{key}] = x;
  });
  obj["msg"] = r.message;
  return one_line(obj);
}

void write_stderr(std::string line) {
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

/// Hands one line to the sink; `stream` is set for a worker's output.
void dispatch(log_level level, std::string_view source, std::string_view stream,
              std::string_view message) {
  log_record r;
  r.level = level;
  r.time = std::chrono::system_clock::now();
  r.source = source;
  r.stream = stream;
  r.message = message;
  std::lock_guard<std::mutex> guard{sink_mtx()};
  split_source(r);
  auto& sink = sink_ref();
  if (auto* raw = std::get_if<log_sink>(&sink)) {
    // What this sink always received: the stream glued into the message.
    if (stream.empty())
      (*raw)(level, source, message);
    else
      (*raw)(level, source, fmt::format("{} | {}", stream, message));
  } else if (auto* structured = std::get_if<log_record_sink>(&sink)) {
    (*structured)(r);
  } else {
    write_stderr(format_log_record(r, current_log_format()));
  }
}

} // namespace

std::string_view to_string(log_level level) {
  constexpr std::string_view names[] = {"debug", "info", "warning", "error", "off"};
  auto i = static_cast<std::size_t>(level);
  return i < std::size(names) ? names[i] : "off";
}

std::optional<log_level> parse_log_level(std::string_view name) {
  for (auto level : {log_level::debug, log_level::info, log_level::warning,
                     log_level::error, log_level::off})
    if (name == to_string(level))
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

std::string_view to_string(log_format format) {
  return format == log_format::json ? "json" : "text";
}

std::optional<log_format> parse_log_format(std::string_view name) {
  for (auto format : {log_format::text, log_format::json})
    if (name == to_string(format))
      return format;
  return std::nullopt;
}

void set_log_format(log_format format) {
  format_ref() = format;
}

log_format current_log_format() {
  return format_ref().load(std::memory_order_relaxed);
}

std::string format_log_record(const log_record& record, log_format format) {
  return format == log_format::json ? format_json(record) : format_text(record);
}

void set_log_sink(log_sink sink) {
  install(std::move(sink));
}

void set_log_record_sink(log_record_sink sink) {
  install(std::move(sink));
}

namespace detail {

void emit_log(log_level level, std::string_view component, std::string_view message) {
  dispatch(level, component, {}, message);
}

log_pool_name::log_pool_name(std::string name) : name_(std::move(name)) {
  if (name_.empty())
    return;
  std::lock_guard<std::mutex> guard{sink_mtx()};
  ++pool_names()[name_];
}

log_pool_name::log_pool_name(log_pool_name&& other) noexcept
  : name_(std::exchange(other.name_, std::string{})) {
  // nop
}

log_pool_name& log_pool_name::operator=(log_pool_name&& other) noexcept {
  if (this != &other) {
    log_pool_name old{std::move(*this)}; // unmarks the name held so far
    name_ = std::exchange(other.name_, std::string{});
  }
  return *this;
}

log_pool_name::~log_pool_name() {
  if (name_.empty())
    return;
  std::lock_guard<std::mutex> guard{sink_mtx()};
  auto& names = pool_names();
  if (auto i = names.find(name_); i != names.end() && --i->second == 0)
    names.erase(i);
}

void log_worker_output(std::string_view worker, bool is_stderr, std::string_view line) {
  if (log_level::info < current_log_level())
    return;
  dispatch(log_level::info, worker, is_stderr ? "stderr" : "stdout", line);
}

} // namespace detail

} // namespace snakepit
