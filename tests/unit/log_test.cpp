// Logging: text (logfmt) and JSON lines, quoting, level filtering, how a
// source name splits into pool, worker and component, and the sinks.

#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "snakepit/actors/detail/log.hpp"
#include "snakepit/actors/log.hpp"

using namespace snakepit;

namespace {
struct counted;
} // namespace

template <>
struct fmt::formatter<counted> : fmt::formatter<int> {
  template <class Context>
  auto format(const counted& x, Context& ctx) const;
};

namespace {

/// 2026-11-27T10:50:58.123Z
const auto fixed_time = std::chrono::system_clock::time_point{
  std::chrono::seconds{1795776658} + std::chrono::milliseconds{123}};

/// Restores the global log settings when a test ends.
struct log_settings_guard {
  log_level level = current_log_level();
  log_format format = current_log_format();
  ~log_settings_guard() {
    set_log_level(level);
    set_log_format(format);
    set_log_sink(nullptr);
  }
};

/// A copy of a record that outlives the sink call.
struct kept_record {
  log_level level;
  std::string source, pool, worker, component, stream, message;
};

log_record_sink keep_into(std::vector<kept_record>& out) {
  return [&out](const log_record& r) {
    out.push_back({r.level, std::string{r.source}, std::string{r.pool}, std::string{r.worker},
                   std::string{r.component}, std::string{r.stream}, std::string{r.message}});
  };
}

/// A logfmt reader for the test: `key=bare` or `key="escaped"`, after the
/// timestamp and level, which it returns as "ts" and "level".
std::map<std::string, std::string> parse_logfmt(std::string_view line) {
  std::map<std::string, std::string> out;
  auto space = line.find(' ');
  REQUIRE(space != std::string_view::npos);
  out["ts"] = std::string{line.substr(0, space)};
  auto pos = line.find_first_not_of(' ', space);
  auto level_end = line.find(' ', pos);
  out["level"] = std::string{line.substr(pos, level_end - pos)};
  pos = line.find_first_not_of(' ', level_end);
  while (pos < line.size()) {
    auto eq = line.find('=', pos);
    REQUIRE(eq != std::string_view::npos);
    auto key = std::string{line.substr(pos, eq - pos)};
    std::string x;
    pos = eq + 1;
    if (pos < line.size() && line[pos] == '"') {
      for (++pos; pos < line.size() && line[pos] != '"'; ++pos) {
        if (line[pos] != '\\') {
          x += line[pos];
          continue;
        }
        REQUIRE(pos + 1 < line.size());
        switch (line[++pos]) {
          case 'n':
            x += '\n';
            break;
          case 'r':
            x += '\r';
            break;
          case 't':
            x += '\t';
            break;
          case 'b':
            x += '\b';
            break;
          case 'f':
            x += '\f';
            break;
          case 'u':
            REQUIRE(pos + 4 < line.size());
            x += static_cast<char>(std::stoi(std::string{line.substr(pos + 1, 4)}, nullptr, 16));
            pos += 4;
            break;
          default:
            x += line[pos];
        }
      }
      REQUIRE(pos < line.size()); // the closing quote
      ++pos;
    } else {
      auto end = line.find(' ', pos);
      if (end == std::string_view::npos)
        end = line.size();
      x = std::string{line.substr(pos, end - pos)};
      pos = end;
    }
    CHECK_MESSAGE(out.count(key) == 0, "field twice: ", key);
    out[key] = std::move(x);
    if (pos < line.size()) {
      REQUIRE(line[pos] == ' ');
      ++pos;
    }
  }
  return out;
}

log_record worker_record(std::string_view message) {
  log_record r;
  r.level = log_level::warning;
  r.time = fixed_time;
  r.source = "demo/w-2";
  r.pool = "demo";
  r.worker = "w-2";
  r.message = message;
  return r;
}

/// Counts how often it is formatted.
struct counted {
  int* formatted;
};

/// What the default sink writes on stderr while `f` runs.
template <class F>
std::string stderr_of(F f) {
  std::fflush(stderr);
  auto* tmp = std::tmpfile();
  REQUIRE(tmp != nullptr);
  auto saved = ::dup(2);
  ::dup2(::fileno(tmp), 2);
  f();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::string out;
  std::rewind(tmp);
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof(buf), tmp)) > 0;)
    out.append(buf, n);
  std::fclose(tmp);
  return out;
}

} // namespace

template <class Context>
auto fmt::formatter<counted>::format(const counted& x, Context& ctx) const {
  return fmt::formatter<int>::format(++*x.formatted, ctx);
}

TEST_SUITE("log") {

TEST_CASE("log: level and format names parse and print") {
  for (auto level : {log_level::debug, log_level::info, log_level::warning, log_level::error,
                     log_level::off})
    CHECK(parse_log_level(to_string(level)) == level);
  CHECK(parse_log_level("warn") == log_level::warning);
  CHECK(!parse_log_level("verbose"));
  CHECK(!parse_log_level("INFO"));
  CHECK(parse_log_format("text") == log_format::text);
  CHECK(parse_log_format("json") == log_format::json);
  CHECK(!parse_log_format("logfmt"));
  CHECK(to_string(log_format::json) == "json");
  log_settings_guard guard;
  set_log_format(log_format::json);
  CHECK(current_log_format() == log_format::json);
}

TEST_CASE("log: text lines are logfmt with a UTC timestamp, level and fields") {
  auto line = format_log_record(worker_record("could not start: no module named 'x'"),
                                log_format::text);
  CHECK(line == "2026-11-27T10:50:58.123Z warning pool=demo worker=w-2 "
                "msg=\"could not start: no module named 'x'\"");
  auto r = worker_record("ready");
  r.level = log_level::info;
  CHECK(format_log_record(r, log_format::text)
        == "2026-11-27T10:50:58.123Z info    pool=demo worker=w-2 msg=ready");
  r.stream = "stderr";
  auto fields = parse_logfmt(format_log_record(r, log_format::text));
  CHECK(fields == std::map<std::string, std::string>{{"ts", "2026-11-27T10:50:58.123Z"},
                                                     {"level", "info"},
                                                     {"pool", "demo"},
                                                     {"worker", "w-2"},
                                                     {"stream", "stderr"},
                                                     {"msg", "ready"}});
  log_record bare;
  bare.time = std::chrono::system_clock::time_point{std::chrono::milliseconds{7}};
  bare.component = "snakepit";
  bare.message = "x";
  CHECK(format_log_record(bare, log_format::text)
        == "1970-01-01T00:00:00.007Z info    component=snakepit msg=x");
}

TEST_CASE("log: text values are quoted and escaped when they must be") {
  for (std::string_view message :
       {std::string_view{"two words"}, std::string_view{"a=b"}, std::string_view{"say \"hi\""},
        std::string_view{"C:\\path"}, std::string_view{"line 1\nline 2\r\n"},
        std::string_view{"tab\there"}, std::string_view{"bell\x07"}, std::string_view{""},
        std::string_view{"caf\xc3\xa9"}}) {
    auto line = format_log_record(worker_record(message), log_format::text);
    INFO(line);
    CHECK(line.find('\n') == std::string::npos);
    CHECK(parse_logfmt(line).at("msg") == message);
  }
  CHECK(format_log_record(worker_record("say \"hi\" \\ bye"), log_format::text)
          .find(R"(msg="say \"hi\" \\ bye")")
        != std::string::npos);
  CHECK(format_log_record(worker_record(""), log_format::text).find("msg=\"\"")
        != std::string::npos);
  // Not UTF-8: quoted, with the bad byte replaced, as in JSON.
  CHECK(parse_logfmt(format_log_record(worker_record("x\xff"), log_format::text)).at("msg")
        == "x\xef\xbf\xbd");
  auto r = worker_record("x");
  r.pool = "my pool";
  CHECK(parse_logfmt(format_log_record(r, log_format::text)).at("pool") == "my pool");
}

TEST_CASE("log: json lines are one object each, fields in order, empty ones left out") {
  auto r = worker_record("say \"hi\"\nbye");
  r.stream = "stdout";
  auto line = format_log_record(r, log_format::json);
  INFO(line);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.rfind(R"({"ts":"2026-11-27T10:50:58.123Z","level":"warning","pool":"demo",)", 0)
        == 0);
  auto obj = nlohmann::json::parse(line);
  CHECK(obj == nlohmann::json{{"ts", "2026-11-27T10:50:58.123Z"},
                              {"level", "warning"},
                              {"pool", "demo"},
                              {"worker", "w-2"},
                              {"stream", "stdout"},
                              {"msg", "say \"hi\"\nbye"}});
  log_record bare;
  bare.time = fixed_time;
  bare.component = "snakepit";
  bare.message = "orphan cleanup";
  CHECK(format_log_record(bare, log_format::json)
        == R"({"ts":"2026-11-27T10:50:58.123Z","level":"info","component":"snakepit",)"
           R"("msg":"orphan cleanup"})");
  // A worker may print bytes that are not UTF-8: the line stays valid JSON.
  auto bad = nlohmann::json::parse(format_log_record(worker_record("x\xff y"), log_format::json));
  CHECK(bad["msg"] == "x\xef\xbf\xbd y");
}

TEST_CASE("log: a source name splits into pool, worker and component") {
  log_settings_guard guard;
  set_log_level(log_level::debug);
  std::vector<kept_record> got;
  set_log_record_sink(keep_into(got));
  using strings = std::vector<std::string>;
  /// source, pool, worker, component of what `source` logs.
  auto split = [&](std::string_view source) {
    got.clear();
    detail::log_info(source, "m");
    REQUIRE(got.size() == 1);
    return strings{got[0].source, got[0].pool, got[0].worker, got[0].component};
  };
  detail::log_pool_name demo{"demo"};
  CHECK(split("demo") == strings{"demo", "demo", "", ""});
  CHECK(split("demo/w-2") == strings{"demo/w-2", "demo", "w-2", ""});
  CHECK(split("demo/workers") == strings{"demo/workers", "demo", "", "workers"});
  CHECK(split("snakepit") == strings{"snakepit", "", "", "snakepit"});
  CHECK(split("telemetry") == strings{"telemetry", "", "", "telemetry"});
  CHECK(split("app") == strings{"app", "", "", "app"}); // a supervisor
  // A worker's pool is known from its id alone.
  CHECK(split("other/w-1") == strings{"other/w-1", "other", "w-1", ""});

  SUBCASE("a name stays a pool's while any pool of that name runs") {
    {
      detail::log_pool_name again{"demo"};
      detail::log_pool_name moved{"app"};
      CHECK(split("app")[1] == "app");
      detail::log_pool_name holder;
      holder = std::move(moved);
      CHECK(split("app")[1] == "app");
    }
    CHECK(split("demo")[1] == "demo");
    CHECK(split("app") == strings{"app", "", "", "app"});
  }
}

TEST_CASE("log: lines below the level are dropped before formatting") {
  log_settings_guard guard;
  std::vector<kept_record> got;
  set_log_record_sink(keep_into(got));
  auto formatted = 0;
  set_log_level(log_level::warning);
  detail::log_debug("demo", "{}", counted{&formatted});
  detail::log_info("demo", "info {}", counted{&formatted});
  CHECK(formatted == 0);
  detail::log_worker_output("demo/w-1", true, "worker line");
  detail::log_warning("demo", "warning {}", 2);
  detail::log_error("demo", "error {}", 3);
  REQUIRE(got.size() == 2);
  CHECK(got[0].level == log_level::warning);
  CHECK(got[0].message == "warning 2");
  CHECK(got[1].level == log_level::error);
  set_log_level(log_level::off);
  detail::log_error("demo", "error {}", 4);
  CHECK(got.size() == 2);
  set_log_level(log_level::debug);
  detail::log_debug("demo", "debug {}", counted{&formatted});
  CHECK(got.size() == 3);
  CHECK(formatted == 1);
  CHECK(got[2].message == "debug 1");
}

TEST_CASE("log: the record sink gets worker output with its stream; the raw sink as before") {
  log_settings_guard guard;
  set_log_level(log_level::info);
  std::vector<kept_record> got;
  set_log_record_sink(keep_into(got));
  detail::log_worker_output("demo/w-3", true, "Traceback (most recent call last):");
  detail::log_worker_output("demo/w-3", false, "hello");
  REQUIRE(got.size() == 2);
  CHECK(got[0].level == log_level::info);
  CHECK(got[0].pool == "demo");
  CHECK(got[0].worker == "w-3");
  CHECK(got[0].stream == "stderr");
  CHECK(got[0].message == "Traceback (most recent call last):");
  CHECK(got[1].stream == "stdout");
  // Setting the raw sink replaces the record sink.
  std::vector<std::string> raw;
  set_log_sink([&raw](log_level level, std::string_view component, std::string_view message) {
    raw.push_back(fmt::format("{} [{}] {}", to_string(level), component, message));
  });
  detail::log_worker_output("demo/w-3", true, "boom");
  detail::log_warning("demo/w-3", "could not start: {}", "why");
  CHECK(got.size() == 2);
  CHECK(raw == std::vector<std::string>{"info [demo/w-3] stderr | boom",
                                        "warning [demo/w-3] could not start: why"});
}

TEST_CASE("log: the default sink writes one line each on stderr in the current format") {
  log_settings_guard guard;
  set_log_level(log_level::info);
  std::vector<kept_record> got;
  set_log_record_sink(keep_into(got));
  set_log_record_sink(nullptr); // back to the default
  set_log_format(log_format::text);
  detail::log_pool_name demo{"demo"};
  auto text = stderr_of([] {
    detail::log_info("demo", "ready: {} of {} workers", 2, 2);
    detail::log_worker_output("demo/w-1", true, "a \"quoted\" line");
  });
  CHECK(got.empty());
  auto nl = text.find('\n');
  REQUIRE(nl != std::string::npos);
  REQUIRE(text.size() == text.find('\n', nl + 1) + 1);
  auto first = parse_logfmt(std::string_view{text}.substr(0, nl));
  CHECK(first.at("level") == "info");
  CHECK(first.at("pool") == "demo");
  CHECK(first.at("msg") == "ready: 2 of 2 workers");
  CHECK(first.at("ts").size() == std::string_view{"2026-11-27T10:50:58.123Z"}.size());
  CHECK(first.at("ts").back() == 'Z');
  auto second = parse_logfmt(std::string_view{text}.substr(nl + 1, text.size() - nl - 2));
  CHECK(second.at("worker") == "w-1");
  CHECK(second.at("stream") == "stderr");
  CHECK(second.at("msg") == "a \"quoted\" line");

  set_log_format(log_format::json);
  auto json = stderr_of([] { detail::log_error("snakepit", "orphan {}", 7); });
  REQUIRE(!json.empty());
  CHECK(json.back() == '\n');
  auto obj = nlohmann::json::parse(json);
  CHECK(obj["level"] == "error");
  CHECK(obj["component"] == "snakepit");
  CHECK(obj["msg"] == "orphan 7");
  CHECK(!obj.contains("pool"));
}

} // TEST_SUITE("log")
