#include "snakepit/actors/pool_config.hpp"

#include <fmt/format.h>

#include "snakepit/messages/error.hpp"
#include "snakepit/messages/execute_request.hpp"

namespace snakepit {

caf::expected<pool_config> validate(pool_config cfg) {
  std::vector<std::string> problems;
  auto need = [&](bool ok, std::string what) {
    if (!ok)
      problems.push_back(std::move(what));
  };
  need(!cfg.name.empty() && cfg.name.find('/') == std::string::npos,
       "name must be non-empty and contain no '/'");
  need(!cfg.adapter.empty(),
       "adapter is required (a dotted path such as "
       "snakepit_bridge.showcase.ShowcaseAdapter)");
  need(cfg.adapter.empty() || cfg.adapter.find('.') != std::string::npos,
       fmt::format("adapter '{}' must be a dotted path: package.module.ClassName",
                   cfg.adapter));
  need(cfg.size >= 1 && cfg.size <= 4096, "size must be between 1 and 4096");
  need(cfg.min_ready <= cfg.size, "min_ready must not exceed size");
  for (auto& [key, text] : cfg.env)
    if (auto bad = bad_worker_env_placeholder(text); !bad.empty())
      problems.push_back(fmt::format("env {} = \"{}\": {} is not a placeholder; use {{index}}, "
                                     "{{count}} or {{index % N}} with N >= 1",
                                     key, text, bad));
  for (auto& set : cfg.cpu_affinity.sets) {
    need(!set.empty(), "cpu_affinity: each set needs at least one CPU");
    for (int cpu : set)
      need(cpu >= 0 && cpu < 1024, fmt::format("cpu_affinity: CPU {} is not 0 to 1023", cpu));
  }
  if (auto& a = cfg.autoscale; a.min_size != 0 || a.max_size != 0) {
    need(a.min_size >= 1 && a.min_size < a.max_size && a.max_size <= 4096,
         "autoscaling needs 1 <= min_size < max_size <= 4096");
    need(a.min_size <= cfg.size && cfg.size <= a.max_size,
         "size (the start size) must lie between min_size and max_size");
    need(a.busy_threshold > 0 && a.busy_threshold <= 1,
         "scale_busy_threshold must be in (0, 1]");
    need(a.max_step_up >= 1, "scale_max_step must be at least 1");
  }
  need(cfg.threads_per_worker >= 1 && cfg.threads_per_worker <= 1024,
       "threads_per_worker must be between 1 and 1024");
  need(cfg.profile == worker_profile::thread || cfg.thread_check == thread_check_mode::off,
       "thread_check needs profile = \"thread\"");
  need(!cfg.preload || cfg.profile == worker_profile::process,
       "preload needs profile = \"process\": a thread-profile worker is one process "
       "already, there is nothing to fork");
  need(cfg.queue_max <= 10'000'000, "queue_max must be at most 10000000");
  need(cfg.startup_timeout.count() > 0, "startup_timeout_ms must be positive");
  need(cfg.queue_timeout.count() > 0, "queue_timeout_ms must be positive");
  need(cfg.request_timeout.count() > 0, "request_timeout_ms must be positive");
  for (auto [key, t] : {std::pair{"request_timeout_ms", cfg.request_timeout},
                        std::pair{"queue_timeout_ms", cfg.queue_timeout},
                        std::pair{"startup_timeout_ms", cfg.startup_timeout},
                        std::pair{"session_ttl_ms", cfg.session_ttl}})
    need(t <= max_timeout, fmt::format("{} must be at most {} (ten years)", key,
                                       max_timeout.count()));
  need(cfg.session_ttl.count() > 0, "session_ttl_ms must be positive");
  need(cfg.max_sessions >= 1, "max_sessions must be at least 1");
  need(cfg.deadline_grace.count() >= 0, "deadline_grace_ms must not be negative");
  need(cfg.shutdown_timeout.count() >= 0, "shutdown_timeout_ms must not be negative");
  need(cfg.shm_threshold >= 0, "shm_threshold must be at least 0 (bytes)");
  need(cfg.shm_bytes_max >= 1, "shm_bytes_max must be at least 1 (bytes)");
  need(cfg.shm_cache_bytes >= 0, "shm_cache_bytes must be at least 0 (bytes)");
  need(cfg.max_payload_bytes >= 1024 && cfg.max_payload_bytes <= (1LL << 31) - 65536 - 1,
       "max_payload_bytes must be between 1024 and 2147418111 (gRPC's limit)");
  need(cfg.intensity.period.count() > 0, "max_seconds must be positive");
  need(cfg.worker_ttl.count() >= 0, "worker_ttl_ms must not be negative");
  need(cfg.worker_max_rss_bytes >= 0, "worker_max_rss_bytes must not be negative");
  need(cfg.lifecycle_interval.count() > 0, "lifecycle_interval_ms must be positive");
  need(cfg.max_concurrent_recycles >= 1, "max_concurrent_recycles must be at least 1");
  need(cfg.drain_timeout.count() >= 0, "drain_timeout_ms must not be negative");
  need(cfg.health_interval.count() >= 0, "health_interval_ms must not be negative");
  need(cfg.health_timeout.count() > 0, "health_timeout_ms must be positive");
  need(cfg.health_max_missed >= 1, "health_max_missed must be at least 1");
  need(cfg.stream_window >= 1 && cfg.stream_window <= 4096,
       "stream_window must be between 1 and 4096");
  // A batch never needs more room than one payload: the default follows a
  // small max_payload_bytes down.
  cfg.batches.max_bytes = std::min(cfg.batches.max_bytes, cfg.max_payload_bytes);
  need(cfg.batches.max_calls >= 1 && cfg.batches.max_calls <= 4096,
       "batch_max_calls must be between 1 and 4096");
  need(cfg.batches.max_bytes >= 1024 && cfg.batches.max_bytes <= cfg.max_payload_bytes,
       "batch_max_bytes must be between 1024 and max_payload_bytes");
  need(cfg.batches.max_unanswered >= 1 && cfg.batches.max_unanswered <= 64,
       "batch_max_unanswered must be between 1 and 64");
  need(cfg.pipeline_depth <= 1024, "pipeline_depth must be between 0 and 1024");
  need(cfg.pipeline_budget.count() >= 0 && cfg.pipeline_budget <= std::chrono::seconds{60},
       "pipeline_budget_ms must be between 0 and 60000");
  need(cfg.backoff.min <= cfg.backoff.max,
       "restart_backoff_min_ms must not exceed restart_backoff_max_ms");
  need(cfg.retry.max_attempts >= 1 && cfg.retry.max_attempts <= 100,
       "retry_max_attempts must be between 1 and 100 (1: no retries)");
  need(cfg.retry.backoff_min.count() >= 0 && cfg.retry.backoff_min <= cfg.retry.backoff_max,
       "retry_backoff_min_ms must be at least 0 and not exceed retry_backoff_max_ms");
  need(cfg.retry.backoff_max <= std::chrono::minutes{10},
       "retry_backoff_max_ms must be at most 600000");
  need(cfg.poison.ttl.count() > 0 && cfg.poison.ttl <= max_timeout,
       "poison_ttl_ms must be positive (and at most ten years)");
  need(cfg.poison.max_entries >= 1 && cfg.poison.max_entries <= 10'000'000,
       "poison_max_entries must be between 1 and 10000000");
  need(cfg.breaker.window.count() > 0 && cfg.breaker.window <= max_timeout,
       "breaker_window_ms must be positive (and at most ten years)");
  need(cfg.breaker.open_time.count() > 0 && cfg.breaker.open_time <= max_timeout,
       "breaker_open_ms must be positive (and at most ten years)");
  if (!problems.empty()) {
    std::string msg = fmt::format("invalid configuration of pool '{}':", cfg.name);
    for (auto& p : problems)
      msg += "\n  - " + p;
    return make_error(errc::bad_config, std::move(msg));
  }
  if (cfg.min_ready == 0)
    cfg.min_ready = cfg.size;
  if (cfg.intensity.max_restarts == 0)
    cfg.intensity.max_restarts = std::max<std::uint32_t>(3, cfg.size);
  return cfg;
}

} // namespace snakepit
