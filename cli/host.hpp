#pragma once

// What every command that starts a pool shares: its options, the log level
// flag, and the actor system it runs in.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>

#include "output.hpp"
#include "progress.hpp"
#include "startup_log.hpp"
#include "snakepit/snakepit.hpp"

namespace snakepit::cli {

inline constexpr const char* showcase_adapter = "snakepit_bridge.showcase.ShowcaseAdapter";

/// Options shared by commands that start a pool.
struct pool_options {
  std::string adapter = showcase_adapter;
  std::vector<std::string> python_path;
  std::string python;
  std::uint32_t workers = 1;
  std::int64_t max_payload_bytes = 64LL * 1024 * 1024;
  std::int64_t startup_timeout_ms = 20000;
  std::string log_level = "warning";
  std::string profile = "process";
  std::uint32_t threads = 4;
  std::string thread_check = "off";
  std::uint32_t min_workers = 0;
  std::uint32_t max_workers = 0;
  bool preload = false;
  /// Errors as JSON on stderr even on a terminal.
  bool json_errors = false;

  void add_to(CLI::App& app) {
    app.add_flag("--json", json_errors,
                 "Errors as one JSON object on stderr even on a terminal (they are JSON "
                 "whenever stderr is not one)");
    app.add_option("--profile", profile, "Worker profile: process (one call at a time per "
                                         "process) or thread (--threads calls per process)")
      ->capture_default_str()
      ->check(CLI::IsMember({"process", "thread"}));
    app.add_option("--threads", threads, "Calls at once per worker in the thread profile")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1024u));
    app.add_option("--thread-check", thread_check,
                   "Thread profile: check for unsafe sharing between threads (off, warn, "
                   "strict)")
      ->capture_default_str()
      ->check(CLI::IsMember({"off", "warn", "strict"}));
    app.add_option("--adapter", adapter, "Adapter class, dotted path (package.module.Class)")
      ->capture_default_str();
    app.add_option("--python-path", python_path, "Extra Python import directory (repeatable)");
    app.add_option("--python", python,
                   "Python interpreter (default: $SNAKEPIT_PYTHON, else one that can "
                   "import grpc)");
    app.add_option("--workers", workers, "Worker processes in the pool")
      ->capture_default_str()
      ->check(CLI::Range(1u, 4096u));
    app.add_option("--min-workers", min_workers,
                   "Autoscale: workers at least (with --max-workers; --workers is the start)")
      ->check(CLI::Range(1u, 4096u));
    app.add_option("--max-workers", max_workers,
                   "Autoscale: workers at most (with --min-workers)")
      ->check(CLI::Range(1u, 4096u));
    app.add_flag("--preload", preload,
                 "Fork the workers from one process that imported the adapter and ran its "
                 "preload() (process profile)");
    app.add_option("--max-payload-bytes", max_payload_bytes,
                   "Largest request or result in bytes")
      ->capture_default_str();
    app.add_option("--startup-timeout-ms", startup_timeout_ms,
                   "Time a worker may take to become ready")
      ->capture_default_str();
    app.add_option("--log-level", log_level, "debug, info, warning, error or off")
      ->capture_default_str();
  }

  pool_config to_config(const std::string& name) const {
    pool_config cfg;
    cfg.name = name;
    cfg.adapter = adapter;
    cfg.python_path = python_path;
    cfg.python = python;
    cfg.size = workers;
    if (min_workers != 0 || max_workers != 0) {
      // pool_config's validation names what is wrong with the pair.
      cfg.autoscale.min_size = min_workers;
      cfg.autoscale.max_size = max_workers;
      cfg.size = std::clamp(workers, min_workers, std::max(min_workers, max_workers));
    }
    cfg.max_payload_bytes = max_payload_bytes;
    cfg.startup_timeout = std::chrono::milliseconds{startup_timeout_ms};
    cfg.profile = *parse_worker_profile(profile);
    cfg.threads_per_worker = threads;
    cfg.thread_check = *parse_thread_check_mode(thread_check);
    cfg.preload = preload;
    return cfg;
  }
};

inline bool apply_log_level(const std::string& name) {
  auto level = parse_log_level(name);
  if (!level) {
    error_info info;
    info.kind = "bad_arguments";
    info.message = "--log-level must be one of debug, info, warning, error, off; got '"
                   + name + "'";
    print_error(info);
    return false;
  }
  set_log_level(*level);
  return true;
}

/// Creates the actor system with the scheduler settings measured best.
struct host {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;

  /// Why the system could not be made (bad TLS files); `sys` is then null.
  caf::error setup_error;

  /// With `distributed`, CAF's middleman too (a node, `[node]`), with TLS
  /// when `tls` is enabled.
  explicit host(bool distributed = false, const node_tls& tls = {}) {
    add_message_types(cfg);
    use_recommended_scheduler(cfg);
    if (distributed)
      if ((setup_error = use_distribution(cfg, tls)))
        return;
    sys = std::make_unique<caf::actor_system>(cfg);
  }

  /// Starts the command's pool, showing start-up progress for large ones;
  /// prints the error and answers nothing when it cannot start.
  std::optional<pool_actor> start(const pool_config& pool_cfg) {
    caf::expected<pool_actor> pool{caf::error{}};
    startup_log held;
    {
      startup_progress progress{{{pool_cfg.name, pool_cfg.size}}};
      pool = start_pool(*sys, pool_cfg);
    }
    if (!pool) {
      auto info = describe(pool.error());
      held.end(info.message);
      print_error(info);
      return std::nullopt;
    }
    return *pool;
  }
};

} // namespace snakepit::cli
