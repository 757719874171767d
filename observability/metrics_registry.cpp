#include "snakepit/observability/metrics_registry.hpp"

#include <algorithm>
#include <mutex>
#include <string_view>

namespace snakepit {

void histogram_sample::observe(double value) {
  if (counts.size() != bounds.size() + 1)
    counts.assign(bounds.size() + 1, 0);
  auto i = std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin();
  ++counts[static_cast<std::size_t>(i)];
  sum += value;
  ++count;
}

namespace {

using kind = metric_family::kind;

/// How an event name maps to a counter: the family and which metadata keys
/// become labels.
struct counter_rule {
  std::string_view event;
  std::string_view family;
  std::string_view help;
  std::vector<std::string_view> labels;
  /// Adds a measurement instead of 1 (empty: count events).
  std::string_view amount;
};

const std::vector<counter_rule>& counter_rules() {
  static const std::vector<counter_rule> rules = {
    {"snakepit.request.executed", "snakepit_requests_total",
     "Calls that reached Python, by outcome (ok or the error kind).",
     {"pool", "tool", "outcome"}, {}},
    {"snakepit.pool.saturated", "snakepit_requests_rejected_total",
     "Requests refused for lack of capacity (queue_full, queue_timeout).", {"pool", "reason"}, {}},
    {"snakepit.pool.capacity_reached", "snakepit_pool_capacity_reached_total",
     "Times every slot of the pool became busy.", {"pool"}, {}},
    {"snakepit.worker.started", "snakepit_worker_starts_total",
     "Worker processes that became ready.", {"pool"}, {}},
    {"snakepit.worker.crashed", "snakepit_worker_crashes_total",
     "Worker processes that died unexpectedly.", {"pool"}, {}},
    {"snakepit.worker.recycled", "snakepit_worker_recycles_total",
     "Workers recycled (drained, then replaced), by reason.", {"pool", "reason"}, {}},
    {"snakepit.worker.deadline_kill", "snakepit_worker_deadline_kills_total",
     "Workers killed because a call ran past its deadline.", {"pool"}, {}},
    {"snakepit.worker.health_kill", "snakepit_worker_health_kills_total",
     "Workers killed after missing health pings.", {"pool"}, {}},
    {"snakepit.supervisor.restart", "snakepit_supervisor_restarts_total",
     "Children restarted by a supervisor.", {"supervisor", "child"}, {}},
    {"snakepit.supervisor.escalation", "snakepit_supervisor_escalations_total",
     "Supervisors that exceeded their restart intensity.", {"supervisor"}, {}},
    {"snakepit.orphans.cleaned", "snakepit_orphans_killed_total",
     "Worker processes of dead earlier hosts killed at start-up.", {}, "killed"},
    {"snakepit.request.retried", "snakepit_request_retries_total",
     "Calls retried after their worker crashed (idempotent calls).", {"pool", "tool"}, {}},
    {"snakepit.request.poisoned", "snakepit_poisoned_requests_total",
     "Requests that crashed workers poison_threshold times and became refused.",
     {"pool", "tool"}, {}},
    {"snakepit.request.poison_refused", "snakepit_poison_refusals_total",
     "Calls refused as poison_request.", {"pool", "tool"}, {}},
    {"snakepit.request.breaker_refused", "snakepit_breaker_refusals_total",
     "Calls refused as circuit_open.", {"pool"}, {}},
    {"snakepit.pool.breaker", "snakepit_breaker_transitions_total",
     "Circuit breaker state changes, by the state entered.", {"pool", "state"}, {}},
    {"snakepit.python.events_dropped", "snakepit_python_events_dropped_total",
     "Telemetry events the Python side dropped (buffer full).", {"pool"}, "dropped"},
  };
  return rules;
}

metric_labels labels_of(const telemetry_event& e, const std::vector<std::string_view>& keys) {
  metric_labels out;
  out.reserve(keys.size());
  for (auto key : keys) {
    auto i = e.metadata.find(std::string{key});
    out.emplace_back(std::string{key}, i == e.metadata.end() ? std::string{} : i->second);
  }
  return out;
}

double measurement(const telemetry_event& e, const std::string& key) {
  auto i = e.measurements.find(key);
  return i == e.measurements.end() ? 0.0 : i->second;
}

} // namespace

struct metrics_registry::impl {
  mutable std::mutex mtx;
  std::map<std::string, metric_family> families;

  metric_family& family(std::string_view name, std::string_view help, kind type) {
    auto& f = families[std::string{name}];
    if (f.name.empty()) {
      f.name = std::string{name};
      f.help = std::string{help};
      f.type = type;
    }
    return f;
  }

  void observe(std::string_view name, std::string_view help, metric_labels labels,
               double seconds) {
    auto& h = family(name, help, kind::histogram).histograms[std::move(labels)];
    if (h.bounds.empty())
      h.bounds = latency_bounds();
    h.observe(seconds);
  }
};

const std::vector<double>& metrics_registry::latency_bounds() {
  static const std::vector<double> bounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                             0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                             5,      10,    30,     60};
  return bounds;
}

metrics_registry::metrics_registry(telemetry& bus) : impl_(std::make_unique<impl>()), bus_(&bus) {
  handler_id_ = bus.attach("*", [this](const telemetry_event& e) { record(e); });
}

metrics_registry::~metrics_registry() {
  bus_->detach(handler_id_);
}

void metrics_registry::record(const telemetry_event& e) {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  if (e.name.compare(0, 7, "python.") == 0) {
    impl_->family("snakepit_python_events_total", "Events emitted by Python code, by name.",
                  kind::counter)
      .values[{{"pool", e.metadata.count("pool") ? e.metadata.at("pool") : std::string{}},
               {"name", e.name.substr(7)}}] += 1;
    return;
  }
  for (auto& rule : counter_rules()) {
    if (e.name != rule.event)
      continue;
    auto amount = rule.amount.empty() ? 1.0 : measurement(e, std::string{rule.amount});
    impl_->family(rule.family, rule.help, kind::counter).values[labels_of(e, rule.labels)]
      += amount;
    break;
  }
  if (e.name == "snakepit.request.executed") {
    impl_->observe("snakepit_request_duration_seconds",
                   "Time calls spent in the Python tool (wall clock).",
                   labels_of(e, {"pool", "tool"}), measurement(e, "python_wall_us") / 1e6);
    impl_->observe("snakepit_request_queue_seconds",
                   "Time calls waited in the pool's queue for a free worker.",
                   labels_of(e, {"pool"}), measurement(e, "queue_us") / 1e6);
  }
}

std::vector<metric_family> metrics_registry::snapshot() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  std::vector<metric_family> out;
  out.reserve(impl_->families.size());
  for (auto& [name, f] : impl_->families)
    out.push_back(f);
  return out;
}

} // namespace snakepit
