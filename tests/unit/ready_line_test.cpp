// The worker's ready line as the worker actor reads it: a process that writes fields of the
// wrong JSON type fails its start with a reason, it never throws into the actor.

#include <doctest/doctest.h>

#include "snakepit/actors/detail/ready_line.hpp"

using snakepit::detail::parse_ready_line;

TEST_CASE("a ready line gives the fields the host reads") {
  std::string why;
  auto line = parse_ready_line(R"({"status": "ready", "pid": 7, "python_version": "3.11.2",
    "implementation": "cpython", "gil_enabled": false, "free_threaded": true,
    "warnings": ["a", 1, "b"], "tools": ["add"]})", why);
  REQUIRE(line);
  CHECK(line->ready);
  CHECK(line->python_version == "3.11.2");
  CHECK(line->implementation == "cpython");
  CHECK(!line->gil_enabled);
  CHECK(line->free_threaded);
  CHECK(line->warnings == std::vector<std::string>{"a", "b"});
}

TEST_CASE("an error line gives Python's message, type and traceback") {
  std::string why;
  auto line = parse_ready_line(R"({"status": "error", "message": "boom",
    "python_type": "ImportError", "traceback": "tb"})", why);
  REQUIRE(line);
  CHECK(!line->ready);
  CHECK(line->message == "boom");
  CHECK(line->python_type == "ImportError");
  CHECK(line->traceback == "tb");
  line = parse_ready_line(R"({"status": "error"})", why);
  REQUIRE(line);
  CHECK(line->message == "unknown startup error");
}

TEST_CASE("fields of the wrong JSON type are refused, not thrown") {
  // Each of these threw nlohmann::json::type_error inside the worker actor.
  for (auto text : {R"({"status": 1})",
                    R"({"status": "ready", "python_version": 3})",
                    R"({"status": "ready", "implementation": ["x"]})",
                    R"({"status": "ready", "gil_enabled": "yes"})",
                    R"({"status": "ready", "free_threaded": 0})",
                    R"({"status": "ready", "warnings": {"a": 1}})",
                    R"({"status": "error", "message": {}})",
                    R"({"status": "error", "traceback": 5})"}) {
    std::string why;
    CHECK_MESSAGE(!parse_ready_line(text, why), text);
    CHECK_MESSAGE(!why.empty(), text);
  }
  std::string why;
  CHECK(!parse_ready_line("[1, 2]", why));
  CHECK(why == "not a JSON object");
  CHECK(!parse_ready_line("{\"status\": \"ready\"", why));
  CHECK(!parse_ready_line(std::string(100000, '['), why));
  // null reads as absent.
  auto line = parse_ready_line(R"({"status": "ready", "python_version": null})", why);
  REQUIRE(line);
  CHECK(line->python_version.empty());
}
