// A typed request reaches a real Python worker and comes back.

#include "pool_fixture.hpp"

using namespace snakepit;
using namespace snakepit::testing;

TEST_CASE_FIXTURE(system_fixture, "calls reach Python and values survive the round trip") {
  auto pool = start(showcase(2));
  SUBCASE("numbers stay exact") {
    auto r = call(pool, make_request("add", {{"a", 2}, {"b", 40}}));
    REQUIRE_MESSAGE(r, message_of(r));
    CHECK(r->result == value{42});
    auto big = call(pool, make_request("add", {{"a", std::int64_t{9007199254740993}}, {"b", 0}}));
    REQUIRE(big);
    CHECK(big->result.as_int() == 9007199254740993);
    auto real = call(pool, make_request("add", {{"a", 0.5}, {"b", 0.25}}));
    REQUIRE(real);
    CHECK(real->result.as_double() == 0.75);
  }
  SUBCASE("nested values and bytes are echoed unchanged") {
    value nested{{"list", value::make_list({1, 2.5, "three", nullptr, true})},
                 {"bytes", bytes{std::string("\x00\x01\xff", 3)}},
                 {"map", value{{"k", "v"}}},
                 {"unicode", "snake \xf0\x9f\x90\x8d"}};
    auto r = call(pool, make_request("echo", {{"value", nested}}));
    REQUIRE_MESSAGE(r, message_of(r));
    CHECK(r->result == nested);
  }
  SUBCASE("large bytes go both ways as bytes") {
    auto r = call(pool, make_request("bytes_length", {{"data", bytes{std::string(3 << 20, 'x')}}}));
    REQUIRE_MESSAGE(r, message_of(r));
    CHECK(r->result.as_int() == (3 << 20));
    auto made = call(pool, make_request("make_bytes", {{"size", 5 << 20}}));
    REQUIRE_MESSAGE(made, message_of(made));
    REQUIRE(made->result.is_bytes());
    CHECK(made->result.if_bytes()->data.size() == size_t{5 << 20});
  }
  SUBCASE("replies carry timing and the worker") {
    auto r = call(pool, make_request("cpu_burn", {{"milliseconds", 30}}));
    REQUIRE_MESSAGE(r, message_of(r));
    CHECK(r->python_wall >= std::chrono::milliseconds{25});
    // cpu_burn spins for a wall time: on a machine whose cores are all busy the
    // call is starved of CPU and gets only a few ms of it (seen at 99% CPU
    // pressure), so only "some CPU, no more than the wall time" holds anywhere.
    CHECK(r->python_cpu > caf::timespan{0});
    CHECK(r->python_cpu <= r->python_wall + std::chrono::milliseconds{5});
    CHECK(r->worker_id.rfind("test/w-", 0) == 0);
    CHECK(!r->request_id.empty());
  }
  SUBCASE("the worker reports its process and native thread limits") {
    auto r = call(pool, make_request("worker_info"));
    REQUIRE_MESSAGE(r, message_of(r));
    CHECK(r->result["pid"].as_int() > 0);
    CHECK(r->result["pid"].as_int() != ::getpid());
    CHECK(r->result["ppid"].as_int() == ::getpid());
    CHECK(r->result["python_version"].as_string().substr(0, 2) == "3.");
    auto st = status(pool);
    CHECK(st.ready == 2);
    CHECK(st.workers.size() == 2);
    CHECK(st.workers[0].pid > 0);
  }
  SUBCASE("worker output does not disturb the protocol") {
    set_log_level(log_level::error);  // keep the test log short
    auto r = call(pool, make_request("noisy", {{"lines", 20000}}));
    set_log_level(log_level::warning);
    REQUIRE_MESSAGE(r, message_of(r));
    CHECK(r->result.as_int() == 20000);
    CHECK(call(pool, make_request("noop")));
  }
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "bad input gets a typed error and the worker keeps serving") {
  auto pool = start(showcase(1));
  SUBCASE("unknown tool lists the known ones") {
    auto r = call(pool, make_request("no_such_tool"));
    CHECK(kind_of(r) == "unknown_tool");
    CHECK(message_of(r).find("no_such_tool") != std::string::npos);
    CHECK(message_of(r).find("echo") != std::string::npos);
  }
  SUBCASE("missing, unexpected and mistyped arguments") {
    auto missing = call(pool, make_request("add", {{"a", 1}}));
    CHECK(kind_of(missing) == "bad_arguments");
    CHECK(message_of(missing).find("'b'") != std::string::npos);
    auto extra = call(pool, make_request("add", {{"a", 1}, {"b", 2}, {"z", 3}}));
    CHECK(kind_of(extra) == "bad_arguments");
    CHECK(message_of(extra).find("'z'") != std::string::npos);
    auto typed = call(pool, make_request("add", {{"a", "one"}, {"b", 2}}));
    CHECK(kind_of(typed) == "bad_arguments");
  }
  SUBCASE("a Python exception carries type and traceback") {
    auto r = call(pool, make_request("fail", {{"message", "kaboom"}}));
    REQUIRE(!r);
    auto info = describe(r.error());
    CHECK(info.kind == "python_exception");
    CHECK(info.python_type == "ValueError");
    CHECK(info.message.find("kaboom") != std::string::npos);
    CHECK(info.traceback.find("Traceback") != std::string::npos);
  }
  SUBCASE("an unencodable result names the Python type") {
    auto r = call(pool, make_request("unencodable"));
    CHECK(kind_of(r) == "encode_failed");
    CHECK(message_of(r).find("set") != std::string::npos);
  }
  // After each failure above the same single worker still answers.
  auto after = call(pool, make_request("add", {{"a", 1}, {"b", 1}}));
  REQUIRE_MESSAGE(after, message_of(after));
  CHECK(after->result == value{2});
  CHECK(status(pool).crashes == 0);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "map_calls runs one tool over many inputs, in order, with per-item errors") {
  std::uint32_t chunk = 1;
  SUBCASE("a call per item") { chunk = 1; }
  SUBCASE("map requests of 64 items") { chunk = 64; }
  SUBCASE("map requests of 7 items") { chunk = 7; }
  CAPTURE(chunk);
  auto pool = start(showcase(2));
  std::uint64_t produced = 0;
  constexpr std::uint64_t total = 2000;
  std::vector<std::int64_t> results;
  std::vector<std::uint64_t> failed_at;
  auto summary = map_calls(
    *sys, pool, "add",
    [&]() -> std::optional<value::map> {
      if (produced == total)
        return std::nullopt;
      auto i = static_cast<std::int64_t>(produced++);
      if (i % 500 == 7)  // a bad item among the good ones
        return value::map{{"a", value{"not a number"}}, {"b", value{1}}};
      return value::map{{"a", value{i}}, {"b", value{1}}};
    },
    [&](std::uint64_t index, caf::expected<execute_reply>& outcome) {
      if (outcome)
        results.push_back(outcome->result.as_int(-1));
      else
        failed_at.push_back(index);
      CHECK(index == results.size() + failed_at.size() - 1);  // in input order
    },
    map_settings{8, std::chrono::seconds{30}, chunk});
  CHECK(summary.items == total);
  CHECK(summary.failed == 4);
  CHECK(summary.failures["bad_arguments"] == 4);
  CHECK(failed_at == std::vector<std::uint64_t>{7, 507, 1007, 1507});
  REQUIRE(results.size() == total - 4);
  CHECK(results.front() == 1);
  CHECK(results.back() == static_cast<std::int64_t>(total));
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a map request runs the tool per item and answers each") {
  auto pool = start(showcase(1));
  auto req = make_request("add");
  req.items = {value::map{{"a", value{1}}, {"b", value{2}}}, value::map{{"a", value{"x"}}},
               value::map{{"a", value{40}}, {"b", value{2}}}};
  auto r = call(pool, req);
  REQUIRE(r);
  REQUIRE(r->items.size() == 3);
  CHECK(r->items[0].ok());
  CHECK(r->items[0].result == value{3});
  CHECK(!r->items[1].ok());
  CHECK(describe(r->items[1].error).kind == "bad_arguments");
  CHECK(r->items[2].result == value{42});
  CHECK(r->result.is_null());
  // Arguments and items at once are refused before anything runs.
  auto both = make_request("add", {{"a", value{1}}});
  both.items = {value::map{{"a", value{1}}, {"b", value{1}}}};
  auto refused = call(pool, both);
  REQUIRE(!refused);
  CHECK(kind_of(refused) == "bad_arguments");
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a map answered with the wrong number of outcomes is an internal error") {
  auto cfg = showcase(1);
  cfg.adapter = "no_map_adapter.NoMapAdapter";
  cfg.python_path = {source_dir() + "/tests/integration/adapters"};
  auto pool = start(cfg);
  auto req = make_request("add");
  req.items = {value::map{{"a", value{1}}, {"b", value{2}}}, value::map{{"a", value{3}}, {"b", value{4}}}};
  auto r = call(pool, req);
  REQUIRE(!r);
  CHECK(kind_of(r) == "internal");
  CHECK(message_of(r).find("map of 2 argument sets of tool 'add' with 0 outcomes") != std::string::npos);
  // Plain calls still work.
  REQUIRE(call(pool, make_request("add", {{"a", value{1}}, {"b", value{2}}})));
  stop(pool);
}
