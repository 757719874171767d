#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/timestamp.hpp>

#include "snakepit/messages/value.hpp"

namespace snakepit {

/// One parameter of a host tool, as Python's `ctx.host_tools()` lists it.
struct host_tool_parameter {
  std::string name;
  /// Same spelling as Python tool schemas: "int", "float", "str", "bool",
  /// "bytes", "list", "dict", "any".
  std::string type = "any";
  bool required = true;
  std::string description;
};

/// One call of a host tool by a Python tool. Answer it exactly once, from any
/// thread, with `reply` or `fail`; the Python caller waits (within its
/// deadline) for it. A call dropped without an answer fails with `internal`.
class host_call {
public:
  struct state;

  explicit host_call(std::shared_ptr<state> s);
  host_call(host_call&&) noexcept;
  host_call& operator=(host_call&&) noexcept;
  host_call(const host_call&) = delete;
  host_call& operator=(const host_call&) = delete;
  ~host_call();

  const std::string& tool() const noexcept;
  const value::map& arguments() const noexcept;
  /// The calling Python tool's deadline (epoch: none). Pass it on to any
  /// pool request the tool makes: that is what keeps a host tool that calls
  /// back into a busy pool from waiting forever.
  caf::timestamp deadline() const noexcept;
  /// The worker, Python request and session the call comes from.
  const std::string& worker_id() const noexcept;
  const std::string& request_id() const noexcept;
  const std::string& session_id() const noexcept;

  void reply(value result);
  /// The Python caller gets `HostToolError` with the error's kind and message.
  void fail(const caf::error& err);

private:
  std::shared_ptr<state> state_;
};

/// A C++ function Python tools can call with `ctx.call_host(name, **args)`.
/// The handler runs on a gRPC thread: it must not block. Quick work answers
/// at once; anything slower (a request to a pool, even the calling one)
/// hands the call to an actor and answers from there.
struct host_tool {
  std::string name;
  std::string description;
  std::vector<host_tool_parameter> parameters;
  std::string returns = "any";
  std::function<void(host_call)> handler;
};

} // namespace snakepit
