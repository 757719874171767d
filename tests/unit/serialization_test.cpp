// Every message type a pool, worker or supervisor exchanges survives CAF's
// serialization as a whole message, by its registered type name: what
// another node (CAF's middleman) does with it.
#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <caf/all.hpp>

#include "snakepit/messages/error.hpp"
#include "snakepit/messages/execute_reply.hpp"
#include "snakepit/messages/execute_request.hpp"
#include "snakepit/messages/message_types.hpp"
#include "snakepit/messages/pool_status.hpp"
#include "snakepit/messages/stream.hpp"
#include "snakepit/messages/supervisor_actor.hpp"
#include "snakepit/messages/tool_spec_inspect.hpp"
#include "snakepit/messages/worker_status.hpp"

using namespace snakepit;

namespace {

struct fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;

  fixture() {
    add_message_types(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
  }

  /// `x` in a message, serialized and read back by type name.
  template <class... Ts>
  caf::message round_trip(Ts... xs) {
    auto msg = caf::make_message(std::move(xs)...);
    std::vector<char> buf;
    caf::binary_serializer sink{*sys, buf};
    auto err = sink(msg);
    REQUIRE_MESSAGE(!err, caf::to_string(err));
    caf::message out;
    caf::binary_deserializer source{*sys, buf};
    err = source(out);
    REQUIRE_MESSAGE(!err, caf::to_string(err));
    return out;
  }

  /// Round trips `x` alone and checks it reads back the same (as CAF prints it).
  template <class T>
  void same(const T& x) {
    caf::message out = round_trip(x);
    REQUIRE(out.match_elements<T>());
    CHECK(caf::deep_to_string(out.get_as<T>(0)) == caf::deep_to_string(x));
  }
};

value every_kind() {
  value::map m;
  m["null"] = value();
  m["bool"] = true;
  m["int"] = std::int64_t{-42};
  m["real"] = 2.5;
  m["text"] = "snakepit \xc3\xa9";
  m["bytes"] = bytes{std::string{"\x00\x01\xff", 3}};
  m["list"] = value::list{value(1), value("two"), value::list{}};
  m["array"] = *ndarray::from(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  m["nested"] = value::map{{"k", value::map{{"deep", value(7)}}}};
  return value(std::move(m));
}

} // namespace

TEST_CASE_FIXTURE(fixture, "values of every kind round trip through CAF's serialization") {
  auto x = every_kind();
  auto out = round_trip(x);
  REQUIRE(out.match_elements<value>());
  CHECK(out.get_as<value>(0) == x);
}

TEST_CASE_FIXTURE(fixture, "requests and replies round trip with their calls' details") {
  auto r = make_request("add", {{"a", 1}, {"b", every_kind()}}, std::chrono::seconds{5});
  r.request_id = "req-1";
  r.correlation_id = "corr";
  r.session_id = "s-1";
  r.metadata = {{"tenant", "x"}};
  r.stream_window = 8;
  r.items = {{{"a", 1}}, {{"a", 2}}};
  auto out = round_trip(execute_atom::value, r);
  REQUIRE((out.match_elements<execute_atom, execute_request>()));
  auto& back = out.get_as<execute_request>(1);
  CHECK(back.tool == "add");
  CHECK(back.arguments == r.arguments);
  CHECK(back.deadline == r.deadline);
  CHECK(back.metadata == r.metadata);
  CHECK(back.items == r.items);
  CHECK(caf::deep_to_string(back) == caf::deep_to_string(r));

  execute_reply reply;
  reply.result = every_kind();
  reply.python_wall = std::chrono::microseconds{120};
  reply.request_id = "req-1";
  reply.worker_id = "pool/w-1";
  item_outcome good;
  good.result = value(3);
  item_outcome bad;
  bad.error = make_error(errc::python_exception, "boom", "KeyError", "Traceback ...");
  reply.items = {good, bad};
  same(reply);
  auto items = round_trip(reply).get_as<execute_reply>(0).items;
  REQUIRE(items.size() == 2);
  auto info = describe(items[1].error);
  CHECK(info.code == errc::python_exception);
  CHECK(info.message == "boom");
  CHECK(info.python_type == "KeyError");
  CHECK(info.traceback == "Traceback ...");
}

TEST_CASE_FIXTURE(fixture, "typed errors keep their kind, message and Python details") {
  auto err = make_error(errc::session_lost, "the worker is gone", "", "");
  auto out = round_trip(err);
  REQUIRE(out.match_elements<caf::error>());
  auto info = describe(out.get_as<caf::error>(0));
  CHECK(info.code == errc::session_lost);
  CHECK(info.message == "the worker is gone");
}

TEST_CASE_FIXTURE(fixture, "statuses, tools and supervision answers round trip") {
  worker_status w;
  w.id = "pool/w-1";
  w.state = "ready";
  w.python_version = "3.11";
  w.profile = "process";
  pool_status p;
  p.name = "pool";
  p.state = "ready";
  p.workers = {w, w};
  p.node = "10.0.0.5:4710";
  cluster_member_status m;
  m.name = "far";
  m.node = "10.0.0.5:4710";
  m.connected = true;
  m.capacity = 4;
  m.latency_us = 1234;
  p.members = {m};
  same(p);
  same(std::vector<worker_status>{w});

  tool_spec t;
  t.name = "add";
  t.description = "adds";
  t.parameters = {parameter_spec{"a", "int", true, value(), "first"},
                  parameter_spec{"b", "int", false, value(1), "second"}};
  t.returns = "int";
  same(std::vector<tool_spec>{t});

  child_info c;
  c.id = "pool";
  c.state = "running";
  c.type = "worker";
  same(std::vector<child_info>{c});
  same(child_counts{});

  stream_summary s;
  s.items = 12;
  s.python_wall = std::chrono::milliseconds{3};
  s.worker_id = "pool/w-2";
  same(s);
  stream_handle h;
  h.id = 9;
  h.request_id = "r";
  same(h); // without a worker: handles of actors need a node to point at
}

TEST_CASE_FIXTURE(fixture, "stream messages to a consumer round trip") {
  auto item = round_trip(stream_item_atom::value, std::uint64_t{1}, std::uint64_t{2},
                         every_kind());
  REQUIRE((item.match_elements<stream_item_atom, std::uint64_t, std::uint64_t, value>()));
  CHECK(item.get_as<value>(3) == every_kind());
  auto err = round_trip(stream_error_atom::value, std::uint64_t{1},
                        make_error(errc::timeout, "too slow"));
  REQUIRE((err.match_elements<stream_error_atom, std::uint64_t, caf::error>()));
  CHECK(describe(err.get_as<caf::error>(2)).code == errc::timeout);
}
