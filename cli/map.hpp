#pragma once

#include <cstdint>
#include <string>

#include "host.hpp"

namespace snakepit::cli {

/// `snakepit map`: one tool over many argument sets.
struct map_options {
  pool_options pool;
  std::string tool;
  /// JSON lines of arguments; empty or "-": standard input.
  std::string args_file;
  /// Results in input order (default), or as they complete with their index.
  bool unordered = false;
  /// Calls in flight; 0: twice the pool's capacity.
  std::uint32_t concurrency = 0;
  std::int64_t timeout_ms = 60000;
  /// Items per call (a map request); 1: one call per item.
  std::uint32_t chunk = 64;
  /// Through a running tree's gateway (`--connect ADDR --pool NAME`) instead
  /// of a pool of its own.
  std::string connect;
  std::string remote_pool;
  std::string token_file;
  std::string ca_file;
};

/// Reads one JSON object of keyword arguments per line, calls the tool for
/// each with at most `concurrency` calls in flight, and writes one JSON line
/// per input: the result, or `{"error": {...}}` for that item (with
/// `unordered`: `{"index": N, "result": ...}` / `{"index": N, "error": ...}`
/// as each completes). Memory stays bounded whatever the input size: input is
/// read at most a window ahead of the output. A summary (items/s, p50/p99
/// latency, failures by kind) goes to stderr, with a progress line on a
/// terminal. Exit 1 when any item failed.
int run_map(const map_options& opts);

} // namespace snakepit::cli
