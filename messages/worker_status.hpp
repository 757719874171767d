#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

namespace snakepit {

/// A snapshot of one worker (one Python process).
struct worker_status {
  /// e.g. "demo/w-2".
  std::string id;
  /// Process id of the Python worker; 0 before it started.
  std::int32_t pid = 0;
  /// "starting", "ready", "stopping".
  std::string state;
  /// Calls the worker may run at once (1 in the process profile).
  std::uint32_t capacity = 1;
  /// Calls running now.
  std::uint32_t in_flight = 0;
  /// Calls finished successfully.
  std::uint64_t served = 0;
  /// Calls that ended with an error.
  std::uint64_t failed = 0;
  /// Interpreter of the worker, e.g. "3.11.2".
  std::string python_version;
  /// e.g. "cpython".
  std::string implementation;
  /// Whether the interpreter runs with the GIL (true on Pythons that cannot
  /// say, which is all before 3.13).
  bool gil_enabled = true;
  /// Whether the interpreter is a free-threaded build.
  bool free_threaded = false;
  /// "process" or "thread".
  std::string profile;
  /// Time since the worker became ready.
  caf::timespan age{0};
  /// No new calls: it is being recycled.
  bool draining = false;
  /// Sums over finished calls of the time spent in the tools.
  caf::timespan python_wall_total{0};
  caf::timespan python_cpu_total{0};
  /// Resident set size of the process when the snapshot was taken; 0 if
  /// unknown.
  std::int64_t rss_bytes = 0;
  /// Events the Python side dropped because its buffer was full.
  std::uint64_t python_events_dropped = 0;
  /// How calls reach Python: "batches" (one stream, calls in batches) or
  /// "unary" (one gRPC call each: `transport = "unary"`, or a worker without
  /// the stream RPC).
  std::string transport;
  /// Calls the pool may queue on this worker beyond its capacity
  /// (`pipeline_depth`; 0 over unary).
  std::uint32_t pipeline_depth = 0;
  /// Calls sent in batches, the batch messages that carried them, and calls
  /// sent alone over unary Execute (no stream, or too large for a batch).
  std::uint64_t batched_calls = 0;
  std::uint64_t batches = 0;
  std::uint64_t unary_calls = 0;
  /// Tools its adapter declares idempotent (`@tool(idempotent=True)`): their
  /// calls are retried when a worker crashes under them.
  std::vector<std::string> idempotent_tools;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_status& x) {
  return f(caf::meta::type_name("snakepit::worker_status"), x.id, x.pid, x.state,
           x.capacity, x.in_flight, x.served, x.failed, x.python_version,
           x.implementation, x.gil_enabled, x.free_threaded, x.profile,
           x.python_wall_total, x.python_cpu_total, x.age, x.draining, x.rss_bytes,
           x.python_events_dropped, x.transport, x.pipeline_depth, x.batched_calls,
           x.batches, x.unary_calls, x.idempotent_tools);
}

} // namespace snakepit
