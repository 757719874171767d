#pragma once

// `snakepit call --repeat N --concurrency C`: one call made many times, with
// a summary (throughput, p50/p99, failures by kind) and a profile advice, and
// `--compare-profiles`: the same run on a process pool and a thread pool of
// the same slots.

#include <cstdint>
#include <map>
#include <string>

#include <caf/actor_system.hpp>

#include "host.hpp"

namespace snakepit::cli {

/// What to call, how often, how many at once.
struct repeat_plan {
  std::string tool;
  value::map args;
  std::int64_t timeout_ms = 60000;
  std::uint32_t repeat = 1;
  std::uint32_t concurrency = 1;
  /// Each result with its timings (`--timings`).
  bool timings = false;
  /// Each result on stdout, one JSON line (off when comparing: the summaries are the output).
  bool print_results = true;
  /// The calls may run twice: retried after a worker crash (`--idempotent`).
  bool idempotent = false;
};

/// What a run of repeated calls did.
struct repeat_outcome {
  /// Calls answered (ok or failed) before the end or the interrupt.
  std::uint32_t finished = 0;
  std::uint32_t failed = 0;
  std::map<std::string, std::uint32_t> failures;
  double p50_ms = 0;
  double p99_ms = 0;
  double seconds = 0;
  /// SIGINT or SIGTERM stopped the run: the calls still in flight are not counted.
  bool interrupted = false;

  /// "200 calls, 16 in flight, 0 failed, 1.234 s, 162 calls/s, latency p50 1.20 ms p99 3.10 ms".
  std::string text(const repeat_plan& plan) const;
};

/// A reply as `call` prints it: the result, or with `timings`
/// {result, python_wall_us, python_cpu_us, worker}.
std::string reply_json(const execute_reply& reply, bool timings);

/// Makes `plan.repeat` calls with at most `plan.concurrency` in flight,
/// printing each result (errors on stderr) unless told not to. A progress
/// line is redrawn on stderr while it is a terminal. SIGINT or SIGTERM (blocked
/// with `block_interrupt_signals` before the actor system exists) stops it:
/// what finished is returned, with `interrupted`.
repeat_outcome call_repeatedly(caf::actor_system& sys, const pool_actor& pool,
                               const repeat_plan& plan);

/// `call --repeat` on a pool of its own (`compare`: one process pool of
/// `plan.concurrency` workers, then one thread pool of one worker with as many
/// threads, the same slots): summaries and the profile advice on stderr.
/// Returns the exit code.
int run_repeat(const pool_options& pool, const repeat_plan& plan, bool compare);

} // namespace snakepit::cli
