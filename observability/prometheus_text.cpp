#include "snakepit/observability/prometheus_text.hpp"

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "snakepit/actors/telemetry.hpp"

namespace snakepit {

namespace {

std::string number(double x) {
  if (std::isnan(x))
    return "NaN";
  if (std::isinf(x))
    return x > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", x);
}

std::string label_text(const metric_labels& labels) {
  if (labels.empty())
    return {};
  std::string out = "{";
  for (auto& [k, v] : labels) {
    if (out.size() > 1)
      out += ',';
    out += fmt::format("{}=\"{}\"", k, escape_label_value(v));
  }
  out += '}';
  return out;
}

const char* type_name(metric_family::kind k) {
  switch (k) {
    case metric_family::kind::counter: return "counter";
    case metric_family::kind::gauge: return "gauge";
    default: return "histogram";
  }
}

void header(std::string& out, const metric_family& f) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, f.help, f.name, type_name(f.type));
}

void render_family(std::string& out, const metric_family& f) {
  if (f.values.empty() && f.histograms.empty())
    return;
  header(out, f);
  for (auto& [labels, v] : f.values)
    out += fmt::format("{}{} {}\n", f.name, label_text(labels), number(v));
  for (auto& [labels, h] : f.histograms) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= h.bounds.size(); ++i) {
      cumulative += i < h.counts.size() ? h.counts[i] : 0;
      auto with_le = labels;
      with_le.emplace_back("le", i < h.bounds.size() ? number(h.bounds[i]) : "+Inf");
      out += fmt::format("{}_bucket{} {}\n", f.name, label_text(with_le), cumulative);
    }
    out += fmt::format("{}_sum{} {}\n", f.name, label_text(labels), number(h.sum));
    out += fmt::format("{}_count{} {}\n", f.name, label_text(labels), h.count);
  }
}

double seconds(caf::timespan t) {
  return std::chrono::duration<double>(t).count();
}

/// Gauges and status counters from the pools' snapshots.
std::vector<metric_family> status_families(const std::vector<pool_status>& pools) {
  using kind = metric_family::kind;
  auto make = [](std::string name, std::string help, kind type = kind::gauge) {
    metric_family f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = type;
    return f;
  };
  auto up = make("snakepit_pool_up", "1 when the pool is ready to serve, else 0.");
  auto size = make("snakepit_pool_size", "Configured workers.");
  auto ready = make("snakepit_pool_ready_workers", "Workers ready to take calls.");
  auto capacity = make("snakepit_pool_capacity", "Calls the ready workers can run at once.");
  auto busy = make("snakepit_pool_busy", "Calls running in workers now.");
  auto queued = make("snakepit_pool_queued", "Requests waiting for a free worker.");
  auto queue_max = make("snakepit_pool_queue_max", "Bound of the queue (queue_max).");
  auto uptime = make("snakepit_pool_uptime_seconds", "Time since the pool started.");
  auto sessions = make("snakepit_pool_sessions", "Sessions open now.");
  auto w_busy = make("snakepit_worker_in_flight", "Calls running in the worker now.");
  auto w_cap = make("snakepit_worker_capacity", "Calls the worker may run at once.");
  auto w_rss = make("snakepit_worker_rss_bytes", "Resident set size of the worker process.");
  auto w_age = make("snakepit_worker_age_seconds", "Time since the worker became ready.");
  auto w_wall = make("snakepit_worker_python_seconds_total",
                     "Wall time the worker's tools ran, summed over finished calls.",
                     kind::counter);
  auto min_size = make("snakepit_pool_min_size", "Autoscaling's lower bound (autoscaled pools).");
  auto max_size = make("snakepit_pool_max_size", "Autoscaling's upper bound (autoscaled pools).");
  auto scaled = make("snakepit_pool_scaled_total",
                     "Steps autoscaling took, by direction (up: workers added at once).",
                     kind::counter);
  auto breaker = make("snakepit_pool_breaker_state",
                      "1 for the circuit breaker's current state (closed, open, half_open).");
  auto poisoned = make("snakepit_pool_poisoned_requests",
                       "Requests refused now as poison_request (crashed workers too often).");
  auto m_up = make("snakepit_cluster_member_connected",
                   "1 when the cluster can send the member calls, else 0.");
  auto m_cap = make("snakepit_cluster_member_capacity", "The member's reported capacity.");
  auto m_busy = make("snakepit_cluster_member_in_flight",
                     "Calls the cluster sent the member that are not answered.");
  auto m_latency = make("snakepit_cluster_member_latency_seconds",
                        "Moving average of the member's call latency, seen by the cluster.");
  auto m_calls = make("snakepit_cluster_member_calls_total",
                      "Calls the member answered for the cluster, by outcome.", kind::counter);
  auto m_lost = make("snakepit_cluster_member_lost_total",
                     "Times the cluster lost the member (node down, pool stopped).",
                     kind::counter);
  for (auto& p : pools) {
    metric_labels pool{{"pool", p.name}};
    for (auto& m : p.members) {
      metric_labels member{{"pool", p.name}, {"member", m.name}, {"node", m.node}};
      m_up.values[member] = m.connected ? 1 : 0;
      m_cap.values[member] = m.capacity;
      m_busy.values[member] = m.in_flight;
      m_latency.values[member] = static_cast<double>(m.latency_us) / 1e6;
      m_lost.values[member] = static_cast<double>(m.lost);
      auto ok = member;
      ok.emplace_back("outcome", "ok");
      m_calls.values[ok] = static_cast<double>(m.served);
      auto failed = member;
      failed.emplace_back("outcome", "error");
      m_calls.values[failed] = static_cast<double>(m.failed);
    }
    up.values[pool] = p.state == "ready" ? 1 : 0;
    size.values[pool] = p.size;
    ready.values[pool] = p.ready;
    capacity.values[pool] = p.capacity;
    busy.values[pool] = p.busy;
    queued.values[pool] = p.queued;
    queue_max.values[pool] = p.queue_max;
    uptime.values[pool] = seconds(p.uptime);
    sessions.values[pool] = p.sessions;
    if (p.members.empty()) {
      for (auto state : {"closed", "open", "half_open"})
        breaker.values[{{"pool", p.name}, {"state", state}}] = p.breaker == state ? 1 : 0;
      poisoned.values[pool] = p.poisoned;
    }
    if (p.max_size > 0) {
      min_size.values[pool] = p.min_size;
      max_size.values[pool] = p.max_size;
      scaled.values[{{"pool", p.name}, {"direction", "up"}}] = static_cast<double>(p.scale_ups);
      scaled.values[{{"pool", p.name}, {"direction", "down"}}]
        = static_cast<double>(p.scale_downs);
    }
    for (auto& w : p.workers) {
      auto local = w.id.size() > p.name.size() + 1 && w.id.compare(0, p.name.size(), p.name) == 0
                     ? w.id.substr(p.name.size() + 1)
                     : w.id;
      metric_labels worker{{"pool", p.name}, {"worker", local}, {"pid", std::to_string(w.pid)}};
      w_busy.values[worker] = w.in_flight;
      w_cap.values[worker] = w.capacity;
      w_rss.values[worker] = static_cast<double>(w.rss_bytes);
      w_age.values[worker] = seconds(w.age);
      w_wall.values[worker] = seconds(w.python_wall_total);
    }
  }
  auto detached = make("snakepit_telemetry_handlers_detached_total",
                       "Telemetry handlers detached because they threw.", kind::counter);
  detached.values[{}] = static_cast<double>(telemetry::global().detached_for_throwing());
  return {up,       size,   ready, capacity, busy,      queued,   queue_max, uptime,
          sessions, min_size, max_size, scaled, w_busy, w_cap, w_rss, w_age, w_wall, m_up, m_cap,
          m_busy, m_latency, m_calls, m_lost, breaker, poisoned, detached};
}

} // namespace

std::string escape_label_value(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_prometheus(const std::vector<metric_family>& families,
                              const std::vector<pool_status>& pools) {
  std::string out;
  for (auto& f : status_families(pools))
    render_family(out, f);
  for (auto& f : families)
    render_family(out, f);
  return out;
}

} // namespace snakepit
