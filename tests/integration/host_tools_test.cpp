// Python tools calling C++ host tools, including a host tool that calls back
// into the pool of the calling worker.

#include "pool_fixture.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

struct host_fixture : system_fixture {
  /// The pool the `ask_pool` host tool calls: set once the pool runs.
  std::shared_ptr<pool_actor> target = std::make_shared<pool_actor>();

  pool_config with_host_tools(std::uint32_t size) {
    auto cfg = showcase(size);
    host_tool add;
    add.name = "add";
    add.description = "a + b, in C++";
    add.parameters = {{"a", "int", true, ""}, {"b", "int", true, ""}};
    add.returns = "int";
    add.handler = [](host_call call) {
      auto& args = call.arguments();
      auto a = args.find("a");
      auto b = args.find("b");
      if (a == args.end() || b == args.end() || !a->second.if_int() || !b->second.if_int()) {
        call.fail(make_error(errc::bad_arguments, "add needs integers a and b"));
        return;
      }
      call.reply(value{*a->second.if_int() + *b->second.if_int()});
    };
    host_tool refuse;
    refuse.name = "refuse";
    refuse.handler = [](host_call call) {
      call.fail(make_error(errc::bad_arguments, "the host says no"));
    };
    host_tool ask_pool;
    ask_pool.name = "ask_pool";
    ask_pool.description = "calls the pool's own `add` tool";
    ask_pool.handler = [this, pool = target](host_call call) {
      auto shared = std::make_shared<host_call>(std::move(call));
      sys->spawn([shared, pool](caf::event_based_actor* self) {
        auto req = make_request("add", shared->arguments());
        // Within the Python caller's deadline, with a margin to report back:
        // what keeps a busy pool (even our own) from hanging the caller.
        req.deadline = shared->deadline() - std::chrono::milliseconds{300};
        self->request(*pool, caf::infinite, execute_atom::value, std::move(req))
          .then([shared](execute_reply& r) { shared->reply(std::move(r.result)); },
                [shared](caf::error& e) { shared->fail(e); });
      });
    };
    cfg.host_tools = {add, refuse, ask_pool};
    return cfg;
  }
};

value::map as_map(const caf::expected<execute_reply>& r) {
  REQUIRE_MESSAGE(r, message_of(r));
  REQUIRE(r->result.if_map());
  return *r->result.if_map();
}

} // namespace

TEST_CASE_FIXTURE(host_fixture, "Python tools list and call host tools and get their errors") {
  auto pool = start(with_host_tools(1));
  auto names = call(pool, make_request("host_tool_names"));
  REQUIRE_MESSAGE(names, message_of(names));
  CHECK(names->result == value(value::list{"add", "ask_pool", "refuse"}));
  auto sum = call(pool, make_request("host_call", {{"name", "add"},
                                                   {"args", value::map{{"a", 2}, {"b", 40}}}}));
  REQUIRE_MESSAGE(sum, message_of(sum));
  CHECK(sum->result == value{42});
  auto refused = as_map(call(pool, make_request("host_call_or_error",
                                                {{"name", "refuse"}, {"args", value::map{}}})));
  CHECK(refused.at("error_kind") == value{"bad_arguments"});
  CHECK(refused.at("error") == value{"the host says no"});
  auto unknown = as_map(call(pool, make_request("host_call_or_error",
                                                {{"name", "nope"}, {"args", value::map{}}})));
  CHECK(unknown.at("error_kind") == value{"unknown_tool"});
  // Uncaught, the host's message reaches the C++ caller in the Python exception.
  auto raised = call(pool, make_request("host_call", {{"name", "refuse"},
                                                      {"args", value::map{}}}));
  CHECK(kind_of(raised) == "python_exception");
  CHECK(message_of(raised).find("the host says no") != std::string::npos);
}

TEST_CASE_FIXTURE(host_fixture, "a host tool calls back into the calling worker's pool") {
  auto pool = start(with_host_tools(2));
  *target = pool;
  auto sum = call(pool, make_request("host_call", {{"name", "ask_pool"},
                                                   {"args", value::map{{"a", 1}, {"b", 2}}}}));
  REQUIRE_MESSAGE(sum, message_of(sum));
  CHECK(sum->result == value{3});
}

TEST_CASE_FIXTURE(host_fixture, "a host tool calling a full pool fails by the deadline and never deadlocks") {
  auto pool = start(with_host_tools(1));
  *target = pool;
  auto t0 = std::chrono::steady_clock::now();
  auto out = as_map(call(pool, make_request("host_call_or_error",
                                            {{"name", "ask_pool"},
                                             {"args", value::map{{"a", 1}, {"b", 2}}}},
                                            1500ms)));
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(out.at("error_kind") == value{"timeout"});
  CHECK(out.at("error").if_string()->find("queue") != std::string::npos);
  CHECK(took < 1500ms);  // the host call gave up within the tool's own deadline
  // The pool goes on serving.
  CHECK(call(pool, make_request("noop")));
}
