#include "snakepit/observability/status_json.hpp"

#include <chrono>

#include <nlohmann/json.hpp>

#include "snakepit/messages/error.hpp"

namespace snakepit {

namespace {

using nlohmann::json;

double seconds(caf::timespan t) {
  return std::chrono::duration<double>(t).count();
}

caf::timespan from_seconds(double s) {
  return std::chrono::duration_cast<caf::timespan>(std::chrono::duration<double>(s));
}

json worker_json(const worker_status& w) {
  return json{{"id", w.id},
              {"pid", w.pid},
              {"state", w.state},
              {"capacity", w.capacity},
              {"in_flight", w.in_flight},
              {"served", w.served},
              {"failed", w.failed},
              {"python_version", w.python_version},
              {"implementation", w.implementation},
              {"gil_enabled", w.gil_enabled},
              {"free_threaded", w.free_threaded},
              {"profile", w.profile},
              {"age_s", seconds(w.age)},
              {"draining", w.draining},
              {"python_wall_s", seconds(w.python_wall_total)},
              {"python_cpu_s", seconds(w.python_cpu_total)},
              {"rss_bytes", w.rss_bytes},
              {"python_events_dropped", w.python_events_dropped},
              {"transport", w.transport},
              {"pipeline_depth", w.pipeline_depth}};
}

json pool_json(const pool_status& p) {
  json workers = json::array();
  for (auto& w : p.workers)
    workers.push_back(worker_json(w));
  json out{{"name", p.name},           {"state", p.state},
              {"size", p.size},           {"ready", p.ready},
              {"capacity", p.capacity},   {"busy", p.busy},
              {"queued", p.queued},       {"queue_max", p.queue_max},
              {"served", p.served},       {"failed", p.failed},
              {"queue_full", p.queue_full}, {"queue_timeouts", p.queue_timeouts},
              {"redispatched", p.redispatched}, {"sessions", p.sessions},
              {"uptime_s", seconds(p.uptime)}, {"crashes", p.crashes},
              {"replacements", p.replacements}, {"recycles", p.recycles},
              {"workers", std::move(workers)}};
  if (!p.node.empty())
    out["node"] = p.node;
  out["breaker"] = p.breaker;
  out["breaker_opened"] = p.breaker_opened;
  out["breaker_refused"] = p.breaker_refused;
  out["retries"] = p.retries;
  out["poisoned"] = p.poisoned;
  out["poison_refused"] = p.poison_refused;
  if (p.max_size > 0) {
    out["min_size"] = p.min_size;
    out["max_size"] = p.max_size;
    out["scale_ups"] = p.scale_ups;
    out["scale_downs"] = p.scale_downs;
  }
  if (!p.members.empty()) {
    json members = json::array();
    for (auto& m : p.members)
      members.push_back({{"name", m.name},         {"node", m.node},
                         {"connected", m.connected}, {"capacity", m.capacity},
                         {"in_flight", m.in_flight}, {"served", m.served},
                         {"failed", m.failed},     {"lost", m.lost},
                         {"joins", m.joins},       {"latency_us", m.latency_us}});
    out["members"] = std::move(members);
  }
  return out;
}

template <class T>
void get(const json& j, const char* key, T& out) {
  if (auto i = j.find(key); i != j.end() && !i->is_null())
    out = i->get<T>();
}

void get_seconds(const json& j, const char* key, caf::timespan& out) {
  double s = 0;
  get(j, key, s);
  out = from_seconds(s);
}

worker_status worker_from(const json& j) {
  worker_status w;
  get(j, "id", w.id);
  get(j, "pid", w.pid);
  get(j, "state", w.state);
  get(j, "capacity", w.capacity);
  get(j, "in_flight", w.in_flight);
  get(j, "served", w.served);
  get(j, "failed", w.failed);
  get(j, "python_version", w.python_version);
  get(j, "implementation", w.implementation);
  get(j, "gil_enabled", w.gil_enabled);
  get(j, "free_threaded", w.free_threaded);
  get(j, "profile", w.profile);
  get_seconds(j, "age_s", w.age);
  get(j, "draining", w.draining);
  get_seconds(j, "python_wall_s", w.python_wall_total);
  get_seconds(j, "python_cpu_s", w.python_cpu_total);
  get(j, "rss_bytes", w.rss_bytes);
  get(j, "python_events_dropped", w.python_events_dropped);
  get(j, "transport", w.transport);
  get(j, "pipeline_depth", w.pipeline_depth);
  return w;
}

pool_status pool_from(const json& j) {
  pool_status p;
  get(j, "name", p.name);
  get(j, "node", p.node);
  get(j, "min_size", p.min_size);
  get(j, "max_size", p.max_size);
  get(j, "scale_ups", p.scale_ups);
  get(j, "scale_downs", p.scale_downs);
  get(j, "state", p.state);
  get(j, "size", p.size);
  get(j, "ready", p.ready);
  get(j, "capacity", p.capacity);
  get(j, "busy", p.busy);
  get(j, "queued", p.queued);
  get(j, "queue_max", p.queue_max);
  get(j, "served", p.served);
  get(j, "failed", p.failed);
  get(j, "queue_full", p.queue_full);
  get(j, "queue_timeouts", p.queue_timeouts);
  get(j, "redispatched", p.redispatched);
  get(j, "sessions", p.sessions);
  get_seconds(j, "uptime_s", p.uptime);
  get(j, "crashes", p.crashes);
  get(j, "replacements", p.replacements);
  get(j, "recycles", p.recycles);
  get(j, "breaker", p.breaker);
  get(j, "breaker_opened", p.breaker_opened);
  get(j, "breaker_refused", p.breaker_refused);
  get(j, "retries", p.retries);
  get(j, "poisoned", p.poisoned);
  get(j, "poison_refused", p.poison_refused);
  if (auto i = j.find("workers"); i != j.end() && i->is_array())
    for (auto& w : *i)
      p.workers.push_back(worker_from(w));
  if (auto i = j.find("members"); i != j.end() && i->is_array())
    for (auto& mj : *i) {
      cluster_member_status m;
      get(mj, "name", m.name);
      get(mj, "node", m.node);
      get(mj, "connected", m.connected);
      get(mj, "capacity", m.capacity);
      get(mj, "in_flight", m.in_flight);
      get(mj, "served", m.served);
      get(mj, "failed", m.failed);
      get(mj, "lost", m.lost);
      get(mj, "joins", m.joins);
      get(mj, "latency_us", m.latency_us);
      p.members.push_back(std::move(m));
    }
  return p;
}

} // namespace

std::string to_json(const tree_status& status) {
  json pools = json::array();
  for (auto& p : status.pools)
    pools.push_back(pool_json(p));
  return json{{"tree", status.tree}, {"pid", status.pid}, {"pools", std::move(pools)}}.dump();
}

caf::expected<tree_status> tree_status_from_json(std::string_view text) {
  try {
    auto j = json::parse(text);
    tree_status out;
    get(j, "tree", out.tree);
    get(j, "pid", out.pid);
    if (auto i = j.find("pools"); i != j.end() && i->is_array())
      for (auto& p : *i)
        out.pools.push_back(pool_from(p));
    return out;
  } catch (const std::exception& e) {
    return make_error(errc::internal,
                      std::string{"not a snakepit status document: "} + e.what());
  }
}

} // namespace snakepit
