#pragma once

// Shared set-up for integration tests: a real actor system, real Python
// worker processes (the showcase adapter), real gRPC.

#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

#include <unistd.h>

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include "snakepit/snakepit.hpp"

namespace snakepit::testing {

inline std::string source_dir() {
  auto* env = std::getenv("SNAKEPIT_SOURCE_DIR");
  return env ? env : SNAKEPIT_TEST_SOURCE_DIR;
}

/// An actor system configured the way the command line configures it.
struct system_fixture {
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;

  system_fixture() {
    add_message_types(sys_cfg);
    use_recommended_scheduler(sys_cfg);
    sys = std::make_unique<caf::actor_system>(sys_cfg);
    if (current_log_level() < log_level::warning && !std::getenv("SNAKEPIT_TEST_VERBOSE"))
      set_log_level(log_level::warning);
  }

  static pool_config showcase(std::uint32_t size = 1) {
    pool_config cfg;
    cfg.name = "test";
    cfg.adapter = "snakepit_bridge.showcase.ShowcaseAdapter";
    cfg.size = size;
    cfg.request_timeout = std::chrono::seconds{30};
    return cfg;
  }

  /// Pools started by the test, stopped when it ends (even after a failed
  /// REQUIRE), so the actor system can shut down.
  std::vector<pool_actor> pools;

  ~system_fixture() {
    for (auto& p : pools)
      caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
  }

  pool_actor start(pool_config cfg) {
    auto pool = start_pool(*sys, std::move(cfg));
    REQUIRE_MESSAGE(pool, (pool ? "" : describe(pool.error()).message));
    pools.push_back(*pool);
    return *pool;
  }

  caf::expected<execute_reply> call(const pool_actor& pool, execute_request req) {
    caf::scoped_actor self{*sys};
    caf::expected<execute_reply> out{caf::error{}};
    self->request(pool, std::chrono::seconds{60}, execute_atom::value, std::move(req))
      .receive([&](execute_reply& r) { out = std::move(r); },
               [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  pool_status status(const pool_actor& pool) {
    caf::scoped_actor self{*sys};
    pool_status out;
    self->request(pool, std::chrono::seconds{10}, status_atom::value)
      .receive([&](pool_status& s) { out = std::move(s); },
               [&](caf::error& e) { FAIL("status failed: " << caf::to_string(e)); });
    return out;
  }

  /// Polls the pool's status until `pred` holds (or fails the test after `limit`).
  pool_status wait_status(const pool_actor& pool, std::function<bool(const pool_status&)> pred,
                          std::chrono::milliseconds limit = std::chrono::seconds{15}) {
    auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto st = status(pool);
      if (pred(st))
        return st;
      if (std::chrono::steady_clock::now() > until) {
        FAIL("pool status condition not reached: ready=" << st.ready << " crashes="
                                                          << st.crashes);
        return st;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
  }

  void stop(const pool_actor& pool) {
    caf::scoped_actor self{*sys};
    self->monitor(pool);
    self->send_exit(pool, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg&) {});
  }
};

/// The reply (or error) of a request sent earlier from `self`.
inline caf::expected<execute_reply> await(caf::scoped_actor& self) {
  caf::expected<execute_reply> out{caf::error{}};
  self->receive([&](execute_reply& r) { out = std::move(r); },
                [&](caf::error& e) { out = std::move(e); });
  return out;
}

inline std::string kind_of(const caf::expected<execute_reply>& r) {
  return r ? std::string{"ok"} : describe(r.error()).kind;
}

inline std::string message_of(const caf::expected<execute_reply>& r) {
  return r ? std::string{} : describe(r.error()).message;
}

} // namespace snakepit::testing
