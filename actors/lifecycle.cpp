#include "snakepit/actors/lifecycle.hpp"

#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>

#include <caf/all.hpp>

#include "snakepit/actors/detail/log.hpp"

namespace snakepit {

namespace {

using tick_atom = caf::atom_constant<caf::atom("tick")>;

struct lifecycle_state {
  pool_config cfg;
  /// Weak: the lifecycle actor must not keep its pool alive; it ends when
  /// the pool is gone.
  caf::actor_addr pool;
  /// Consecutive checks above the RSS limit, per worker.
  std::map<std::string, int> rss_strikes;
  static inline const char* name = "snakepit.lifecycle";
};


void check(caf::stateful_actor<lifecycle_state>* self, const pool_status& status) {
  auto& st = self->state;
  for (const auto& w : status.workers) {
    if (w.draining)
      continue;
    std::string reason;
    if (st.cfg.worker_ttl.count() > 0 && w.age >= st.cfg.worker_ttl) {
      reason = "ttl";
    } else if (st.cfg.worker_max_requests > 0
               && w.served + w.failed >= request_limit(st.cfg, w.id)) {
      reason = "requests";
    } else if (st.cfg.worker_max_rss_bytes > 0 && w.pid > 0) {
      auto rss = process_rss_bytes(w.pid);
      auto& strikes = st.rss_strikes[w.id];
      strikes = rss > st.cfg.worker_max_rss_bytes ? strikes + 1 : 0;
      if (strikes >= 2) {
        reason = "memory";
        detail::log_info(st.cfg.name, "{} uses {} bytes, over worker_max_rss_bytes ({})",
                         w.id, rss, st.cfg.worker_max_rss_bytes);
      }
    }
    if (reason.empty())
      continue;
    st.rss_strikes.erase(w.id);
    if (auto pool = caf::actor_cast<pool_actor>(st.pool))
      self->request(pool, caf::infinite, recycle_atom::value, w.id, reason)
        .then([](bool) {}, [](caf::error&) {});
  }
}

} // namespace

std::uint64_t request_limit(const pool_config& cfg, const std::string& worker_id) {
  if (cfg.worker_max_requests == 0)
    return 0;
  // A stable per-worker jitter in [0, max], so workers do not recycle together.
  auto jitter = cfg.worker_max_requests_jitter == 0
                  ? 0
                  : std::hash<std::string>{}(worker_id) % (cfg.worker_max_requests_jitter + 1);
  return cfg.worker_max_requests + jitter;
}

bool lifecycle_enabled(const pool_config& cfg) {
  return cfg.worker_ttl.count() > 0 || cfg.worker_max_requests > 0
         || cfg.worker_max_rss_bytes > 0;
}

std::int64_t process_rss_bytes(int pid) {
  std::ifstream statm{"/proc/" + std::to_string(pid) + "/statm"};
  std::int64_t size = 0, resident = 0;
  if (!(statm >> size >> resident))
    return 0;
  return resident * static_cast<std::int64_t>(::sysconf(_SC_PAGESIZE));
}

caf::actor spawn_lifecycle(caf::actor_system& sys, const pool_actor& pool,
                           const pool_config& cfg) {
  return sys.spawn([addr = pool.address(), cfg](caf::stateful_actor<lifecycle_state>* self)
                     -> caf::behavior {
    self->state.cfg = cfg;
    self->state.pool = addr;
    self->delayed_send(self, cfg.lifecycle_interval, tick_atom::value);
    return {
      [self](tick_atom) {
        auto target = caf::actor_cast<pool_actor>(self->state.pool);
        if (!target) {
          self->quit();
          return;
        }
        self->request(target, caf::infinite, status_atom::value)
          .then(
            [self](const pool_status& status) {
              if (status.state == "ready")
                check(self, status);
              self->delayed_send(self, self->state.cfg.lifecycle_interval, tick_atom::value);
            },
            [self](caf::error&) { self->quit(); });
      },
    };
  });
}

} // namespace snakepit
