#include "snakepit/observability/diagnosis.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "snakepit/actors/profile_advice.hpp"

namespace snakepit {

namespace {

using severity = recommendation::severity;

double seconds(caf::timespan t) {
  return std::chrono::duration<double>(t).count();
}

std::string format_bytes(double bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t unit = 0;
  while (std::abs(bytes) >= 1024 && unit + 1 < std::size(units)) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, units[unit]);
}

std::string percent(double share) {
  return fmt::format("{:.0f}%", share * 100);
}

/// "1 worker", "2 workers".
std::string count_of(std::uint64_t n, const char* one, const char* many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

double ratio(double num, double den) {
  return den > 0 ? num / den : 0;
}

std::uint64_t ceil_u64(double x) {
  return x <= 0 ? 0 : static_cast<std::uint64_t>(std::ceil(x));
}

/// The cores CPU-bound work can use: the affinity mask, or the cgroup quota
/// when lower (rounded up: 1.5 CPUs run two busy processes faster than one).
/// 0 when unknown.
std::uint64_t usable_cores(const machine_info& m) {
  double cores = m.cores;
  if (m.cgroup_cpu_limit && *m.cgroup_cpu_limit > 0)
    cores = std::min(cores, *m.cgroup_cpu_limit);
  return ceil_u64(cores);
}

/// The memory the pools may use, in signed bytes (differences go negative).
struct memory_budget {
  /// MemTotal, or the cgroup limit when lower; 0 when unknown.
  std::int64_t limit = 0;
  /// MemAvailable; with a cgroup limit, at most the limit less the pools' RSS
  /// (the workers are in the host's cgroup).
  std::int64_t available = 0;

  std::int64_t reserve() const {
    return static_cast<std::int64_t>(static_cast<double>(limit) * memory_reserve);
  }
};

memory_budget budget_of(const machine_info& m, std::int64_t pools_rss) {
  memory_budget b;
  b.limit = static_cast<std::int64_t>(m.memory_total_bytes);
  b.available = static_cast<std::int64_t>(m.memory_available_bytes);
  if (m.cgroup_memory_limit_bytes) {
    auto limit = static_cast<std::int64_t>(*m.cgroup_memory_limit_bytes);
    b.limit = b.limit > 0 ? std::min(b.limit, limit) : limit;
    b.available = std::min(b.available, std::max<std::int64_t>(0, limit - pools_rss));
  }
  return b;
}

/// What the rules need to know about one pool, measured once.
struct pool_facts {
  const pool_status* status = nullptr;
  pool_diagnosis d;
  profile_advice advice;
  /// calls - rejected: the calls a worker ran.
  std::uint64_t ran = 0;
  /// Whether the tools' CPU share is known and at least `cpu_bound_share`,
  /// or known and below it.
  bool cpu_bound = false;
  bool waiting = false;
  /// The workers' known RSS values, sorted.
  std::vector<std::int64_t> rss;
  /// Workers running at least one call now.
  std::uint64_t busy_processes = 0;
  /// Workers configured but not running: each will need about the median RSS.
  std::uint64_t missing_workers = 0;
};

/// How long the pool has been ready, when the status can tell: the pool was
/// ready when its last initial worker was, so while none was replaced or
/// added since, that is the youngest worker's age. Before it, the first
/// workers waited for the others, not for calls: the pool's start-up is not
/// idle time.
std::optional<caf::timespan> ready_for(const pool_status& s) {
  std::uint64_t recycled = 0;
  for (auto& [why, n] : s.recycles)
    recycled += n;
  if (s.workers.empty() || s.workers.size() < s.size || s.crashes + s.replacements + recycled
                                                           + s.scale_ups > 0)
    return std::nullopt;
  auto youngest = s.workers.front().age;
  for (auto& w : s.workers)
    youngest = std::min(youngest, w.age);
  return youngest;
}

/// A worker's time to serve calls: since it was ready, and not before the pool was.
caf::timespan serving_time(const worker_status& w, const std::optional<caf::timespan>& pool_ready) {
  return pool_ready ? std::min(w.age, *pool_ready) : w.age;
}

} // namespace

workload_observation observe(const pool_status& s, const machine_info& m) {
  auto w = observe(s);
  auto pool_ready = ready_for(s);
  double serving = 0;
  for (auto& worker : s.workers)
    serving += seconds(serving_time(worker, pool_ready));
  if (!s.workers.empty())
    w.elapsed = caf::timespan{static_cast<caf::timespan::rep>(
      serving / static_cast<double>(s.workers.size()) * 1e9)};
  w.usable_cores = static_cast<double>(usable_cores(m));
  // A short look goes with the last 10 s of pressure; a pool watched longer
  // with the last minute.
  w.cpu_pressure = w.elapsed < std::chrono::seconds{60} && m.cpu_pressure_10s
                     ? m.cpu_pressure_10s
                     : m.cpu_pressure_60s;
  if (m.worker_window_length.count() > 0) {
    bool any = false;
    for (auto& worker : s.workers) {
      auto sample = m.workers.find(worker.pid);
      if (sample == m.workers.end())
        continue;
      any = true;
      // A process worker's calls run in one thread: that thread's waits,
      // not its gRPC threads' (which a busy machine makes add up). A thread
      // worker's calls run in all its pool threads: the sum.
      w.window_run_queue_wait += w.profile == worker_profile::process
                                   ? sample->second.sched.busiest_thread_wait
                                   : sample->second.sched.run_queue_wait;
      w.window_tools_wall += sample->second.tools_wall;
      w.window_tools_cpu += sample->second.tools_cpu;
    }
    if (any)
      w.window = m.worker_window_length;
  }
  return w;
}

std::vector<std::int32_t> worker_pids(const std::vector<pool_status>& pools) {
  std::vector<std::int32_t> out;
  for (auto& pool : pools)
    for (auto& w : pool.workers)
      if (w.pid > 0)
        out.push_back(w.pid);
  return out;
}

void add_worker_window(machine_info& m, const std::vector<pool_status>& before,
                       const std::vector<pool_status>& after,
                       const std::map<std::int32_t, process_cpu>& sched_before,
                       const std::map<std::int32_t, process_cpu>& sched_after,
                       caf::timespan window) {
  std::map<std::int32_t, const worker_status*> earlier;
  for (auto& pool : before)
    for (auto& w : pool.workers)
      earlier[w.pid] = &w;
  auto grown = cpu_growth(sched_before, sched_after);
  m.workers.clear();
  for (auto& pool : after) {
    for (auto& w : pool.workers) {
      auto then = earlier.find(w.pid);
      auto sched = grown.find(w.pid);
      if (w.pid <= 0 || then == earlier.end() || sched == grown.end())
        continue;
      worker_window sample;
      sample.sched = sched->second;
      sample.tools_wall = std::max(caf::timespan{0},
                                   w.python_wall_total - then->second->python_wall_total);
      sample.tools_cpu = std::max(caf::timespan{0},
                                  w.python_cpu_total - then->second->python_cpu_total);
      m.workers[w.pid] = sample;
    }
  }
  m.worker_window_length = m.workers.empty() ? caf::timespan{0} : window;
}

namespace {

pool_facts measure(const pool_status& s, const machine_info& m) {
  pool_facts f;
  f.status = &s;
  auto& d = f.d;
  d.pool = s.name;
  d.size = s.size;
  d.ready = s.ready;
  d.calls = s.served + s.failed;
  d.rejected = s.queue_full + s.queue_timeouts;
  d.busy_now = ratio(s.busy, s.capacity);
  d.saturation = ratio(static_cast<double>(d.rejected), static_cast<double>(d.calls));
  double wall = 0, slot_time = 0;
  auto pool_ready = ready_for(s);
  for (auto& w : s.workers) {
    if (d.profile.empty())
      d.profile = w.profile;
    wall += seconds(w.python_wall_total);
    slot_time += seconds(serving_time(w, pool_ready)) * w.capacity;
    if (w.rss_bytes > 0)
      f.rss.push_back(w.rss_bytes);
    d.rss_total_bytes += std::max<std::int64_t>(0, w.rss_bytes);
    if (w.in_flight > 0)
      ++f.busy_processes;
  }
  d.utilisation = std::clamp(ratio(wall, slot_time), 0.0, 1.0);
  std::sort(f.rss.begin(), f.rss.end());
  if (!f.rss.empty())
    d.rss_per_worker_bytes = f.rss[(f.rss.size() - 1) / 2];
  f.ran = d.calls > d.rejected ? d.calls - d.rejected : 0;
  f.missing_workers = s.size > s.workers.size() ? s.size - s.workers.size() : 0;
  auto w = observe(s, m);
  f.advice = advise_profile(w);
  bool share_known = w.calls > 0 && w.python_wall.count() > 0;
  // Starving calls want CPU like CPU-bound ones: they count against the cores.
  f.cpu_bound = share_known && (f.advice.cpu_share >= cpu_bound_share || f.advice.cpu_starved);
  f.waiting = share_known && !f.cpu_bound;
  return f;
}

recommendation make(severity level, std::string what, std::string why, std::string action,
                    std::string rule) {
  return {level, std::move(what), std::move(why), std::move(action), std::move(rule)};
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (auto& part : parts)
    out += (out.empty() ? "" : sep) + part;
  return out;
}

/// [pool_too_small], [pool_too_large] and [not_enough_traffic].
void size_rules(const pool_facts& f, const machine_info& m, const memory_budget& budget,
                std::vector<recommendation>& out) {
  auto& s = *f.status;
  auto& d = f.d;
  auto section = fmt::format("[pools.{}]", s.name);
  bool rejecting = d.rejected > 0;
  if (rejecting || (d.utilisation > busy_utilisation && s.queued > 0)) {
    double demand = d.utilisation;
    if (rejecting && f.ran > 0)
      demand *= static_cast<double>(f.ran + d.rejected) / static_cast<double>(f.ran);
    auto wanted = std::max<std::uint64_t>(s.size + 1,
                                          ceil_u64(s.size * demand / target_utilisation));
    auto target = wanted;
    std::vector<std::string> caps;
    auto cores = usable_cores(m);
    if (f.cpu_bound && d.profile != "thread" && cores > 0 && target > cores) {
      target = std::max<std::uint64_t>(s.size, cores);
      caps.push_back(fmt::format("capped by the {} cores: the calls are CPU-bound (CPU {} of "
                                 "their wall time), and more such processes than cores only "
                                 "take turns",
                                 cores, percent(f.advice.cpu_share)));
    }
    if (d.rss_per_worker_bytes > 0 && budget.limit > 0) {
      auto spare = budget.available - budget.reserve();
      auto fit = spare > 0 ? static_cast<std::uint64_t>(spare / d.rss_per_worker_bytes) : 0;
      if (target > s.size + fit) {
        target = s.size + fit;
        caps.push_back(fmt::format("capped by memory: {} available, keeping {} free, fits {} "
                                   "more {} of {}",
                                   format_bytes(budget.available),
                                   format_bytes(budget.reserve()), fit,
                                   fit == 1 ? "worker" : "workers",
                                   format_bytes(d.rss_per_worker_bytes)));
      }
    }
    auto why = rejecting ? fmt::format("{} of {} requests rejected ({} queue full, {} queue "
                                       "timeouts); utilisation {}",
                                       d.rejected, d.calls, s.queue_full, s.queue_timeouts,
                                       percent(d.utilisation))
                         : fmt::format("utilisation {} with {} requests queued",
                                       percent(d.utilisation), s.queued);
    why += fmt::format("; for {} utilisation it needs {} workers", percent(target_utilisation),
                       wanted);
    if (!caps.empty())
      why += "; " + join(caps, "; ");
    // Autoscaled: the bounds are what to change, not size.
    bool elastic = s.max_size > 0;
    auto action
      = elastic && target > s.max_size
          ? fmt::format("set max_size = {} in {} (it autoscales {}..{})", target, section,
                        s.min_size, s.max_size)
      : elastic && target > s.size
          ? fmt::format("lower scale_up_wait_ms in {}: the pool may grow to {} workers but "
                        "grew too slowly for this load (it has {})",
                        section, s.max_size, s.size)
      : target > s.size
          ? fmt::format("set size = {} in {}", target, section)
          : fmt::format("keep size = {} in {}: the pool cannot grow on this machine; add cores "
                        "or memory, spread the load over more machines, or make the calls "
                        "cheaper",
                        s.size, section);
    out.push_back(make(d.saturation >= critical_saturation ? severity::critical
                                                             : severity::warning,
                       "pool too small", std::move(why), std::move(action), "pool_too_small"));
    return;
  }
  auto uptime = seconds(s.uptime);
  if (uptime < judge_min_uptime_seconds || d.calls < judge_min_calls) {
    // Both thresholds and both facts: "2545 calls in 28 s" next to "judged
    // from 100 calls" alone read as a contradiction.
    out.push_back(make(severity::info, "too early to judge the size",
                       fmt::format("a size is judged after at least {} s up and {} calls; this "
                                   "pool has been up {:.0f} s and answered {} calls",
                                   judge_min_uptime_seconds, judge_min_calls, uptime, d.calls),
                       "look again later, under normal load", "not_enough_traffic"));
    return;
  }
  if (d.utilisation < idle_utilisation && s.size > 1 && s.queued == 0) {
    auto target = std::max<std::uint64_t>(1, ceil_u64(s.size * d.utilisation
                                                      / target_utilisation));
    // Autoscaled: it shrinks by itself down to min_size; only that can be
    // too high.
    if (s.max_size > 0) {
      if (target >= s.min_size)
        return;
      out.push_back(make(severity::info, "autoscaled pool's floor above its load",
                         fmt::format("utilisation {} over {:.0f} s and {} calls; for {} "
                                     "utilisation {} suffice, but min_size is {}",
                                     percent(d.utilisation), uptime, d.calls,
                                     percent(target_utilisation),
                                     count_of(target, "worker", "workers"), s.min_size),
                         fmt::format("set min_size = {} in {}", target, section),
                         "pool_too_large"));
      return;
    }
    auto frees = d.rss_per_worker_bytes > 0
                   ? fmt::format(" (frees about {})",
                                 format_bytes(static_cast<double>(d.rss_per_worker_bytes)
                                              * static_cast<double>(s.size - target)))
                   : std::string{};
    out.push_back(make(severity::info, "pool larger than its load",
                       fmt::format("utilisation {} over {:.0f} s and {} calls; for {} "
                                   "utilisation {} suffice",
                                   percent(d.utilisation), uptime, d.calls,
                                   percent(target_utilisation),
                                   count_of(target, "worker", "workers")),
                       fmt::format("set size = {} in {}{}", target, section, frees),
                       "pool_too_large"));
  }
}

/// [profile]
void profile_rule(const pool_facts& f, const machine_info& m, std::vector<recommendation>& out) {
  auto& s = *f.status;
  if (s.workers.empty() || f.d.calls < profile_min_calls)
    return;
  auto current = f.d.profile == "thread" ? worker_profile::thread : worker_profile::process;
  if (f.advice.cpu_starved) {
    auto cores = usable_cores(m);
    auto fewer = cores > 0 && s.size > cores && current == worker_profile::process
                   ? fmt::format("set size = {} in [pools.{}] (one busy process per core) if "
                                 "this pool keeps the cores busy; else ",
                                 cores, s.name)
                   : std::string{};
    out.push_back(make(severity::warning, "calls starved of CPU", f.advice.reason,
                       fmt::format("keep profile = \"{}\"; {}give the machine more cores or "
                                   "move other work off it",
                                   to_string(current), fewer),
                       "cpu_starved"));
    return;
  }
  if (f.advice.recommended == current)
    return;
  std::uint64_t slots = 0;
  for (auto& w : s.workers)
    slots += w.capacity;
  slots = std::max<std::uint64_t>(slots, s.size);
  std::string action;
  if (f.advice.recommended == worker_profile::thread) {
    auto threads = std::min<std::uint64_t>(slots, max_suggested_threads);
    action = fmt::format("set profile = \"thread\", threads_per_worker = {} and size = {} in "
                         "[pools.{}] (the same {} slots; the adapter must derive from "
                         "ThreadSafeAdapter)",
                         threads, (slots + threads - 1) / threads, s.name, slots);
  } else {
    // advise_profile picks processes only for CPU-bound calls (GIL-bound
    // included): more processes than cores would only take turns.
    auto size = slots;
    if (auto cores = usable_cores(m); cores > 0)
      size = std::min(size, cores);
    action = fmt::format("set profile = \"process\" and size = {} in [pools.{}]", size, s.name);
  }
  out.push_back(make(severity::warning,
                     fmt::format("profile {} suits these calls better than {}",
                                 to_string(f.advice.recommended), to_string(current)),
                     f.advice.reason, std::move(action), "profile"));
}

/// [rss_outlier]
void rss_rule(const pool_facts& f, std::vector<recommendation>& out) {
  auto& s = *f.status;
  auto median = f.d.rss_per_worker_bytes;
  if (f.rss.size() < 2 || median <= 0)
    return;
  auto top = f.rss.back();
  if (static_cast<double>(top) <= rss_outlier_factor * static_cast<double>(median)
      || top - median < rss_outlier_min_bytes)
    return;
  auto worker = std::find_if(s.workers.begin(), s.workers.end(),
                             [&](const worker_status& w) { return w.rss_bytes == top; });
  // Halfway: catches this worker, leaves the others room to grow.
  constexpr std::int64_t mib = 1 << 20;
  auto limit = ((median + top) / 2 + mib - 1) / mib * mib;
  auto memory_recycles = s.recycles.count("memory") ? s.recycles.at("memory") : 0;
  out.push_back(make(
    severity::warning, "a worker uses far more memory than the others",
    fmt::format("{} (pid {}) has {} resident, the pool's median is {}: a possible leak",
                worker->id, worker->pid, format_bytes(static_cast<double>(top)),
                format_bytes(static_cast<double>(median))),
    fmt::format("set worker_max_rss_bytes = {} in [pools.{}] to recycle (drain, then replace) "
                "a worker that stays above it{}",
                limit, s.name,
                memory_recycles > 0
                  ? fmt::format(" (it is on already, with {} memory recycles: lower it)",
                                memory_recycles)
                  : std::string{}),
    "rss_outlier"));
}

/// [crashes], [breaker], [poison], [replacements] and [not_ready].
void health_rules(const pool_facts& f, std::vector<recommendation>& out) {
  auto& s = *f.status;
  auto uptime = seconds(s.uptime);
  if (s.crashes > 0)
    out.push_back(make(severity::warning, "workers crashed",
                       fmt::format("{} died unexpectedly in {:.0f} s",
                                   count_of(s.crashes, "worker process", "worker processes"),
                                   uptime),
                       "read the host's log for the workers' exit status and Python "
                       "tracebacks (their stderr is logged with the worker id); a kill by "
                       "signal 9 may be the out-of-memory killer (dmesg)",
                       "crashes"));
  if (s.breaker != "closed" || s.breaker_opened > 0)
    out.push_back(make(s.breaker == "closed" ? severity::warning : severity::critical,
                       s.breaker == "closed" ? "circuit breaker opened"
                                             : "circuit breaker " + s.breaker,
                       fmt::format("it opened {} after repeated worker crashes and refused {} "
                                   "(circuit_open)",
                                   count_of(s.breaker_opened, "time", "times"),
                                   count_of(s.breaker_refused, "call", "calls")),
                       "find why the workers crash (the log's worker lines, tracebacks, dmesg "
                       "for the OOM killer); breaker_threshold, breaker_window_ms and "
                       "breaker_open_ms tune it",
                       "breaker"));
  if (s.poisoned > 0 || s.poison_refused > 0)
    out.push_back(make(severity::warning, "requests that crash workers",
                       fmt::format("{} refused now, {} refused so far (poison_request): the same "
                                   "tool and arguments crashed workers repeatedly",
                                   count_of(s.poisoned, "request", "requests"),
                                   count_of(s.poison_refused, "call", "calls")),
                       "the log names the tool (\"crashed workers N times\"): fix the tool or "
                       "its input; the refusal ends poison_ttl_ms after the last crash",
                       "poison"));
  if (s.replacements > 0)
    out.push_back(make(s.replacements >= many_replacements ? severity::warning : severity::info,
                       "workers killed for calls past their deadline",
                       fmt::format("{} replaced because a call still ran deadline_grace "
                                   "after its deadline; each costs a restart",
                                   count_of(s.replacements, "worker", "workers")),
                       fmt::format("raise request_timeout in [pools.{}] (or the callers' "
                                   "deadlines) if the calls are legitimately slow, or let the "
                                   "tool stop early by checking ctx.time_left()",
                                   s.name),
                       "replacements"));
  if (s.ready < s.size) {
    auto level = s.state == "starting"                  ? severity::info
                 : s.state == "failed" || s.ready == 0 ? severity::critical
                                                        : severity::warning;
    out.push_back(make(level, level == severity::info ? "pool still starting" : "pool not ready",
                       fmt::format("{} of {} workers ready (state {})", s.ready, s.size,
                                   s.state),
                       level == severity::info
                         ? "wait for the start to finish (startup_timeout)"
                         : fmt::format("read the log for start failures and restarts; until "
                                       "then the pool serves with {} of {} workers",
                                       s.ready, s.size),
                       "not_ready"));
  }
}

/// [memory_headroom]
void memory_rule(const std::vector<pool_facts>& facts, const memory_budget& budget,
                 std::int64_t pools_rss, std::vector<recommendation>& out) {
  if (budget.limit <= 0)
    return;
  std::int64_t upcoming = 0;
  std::uint64_t missing = 0;
  for (auto& f : facts) {
    upcoming += f.d.rss_per_worker_bytes * static_cast<std::int64_t>(f.missing_workers);
    missing += f.d.rss_per_worker_bytes > 0 ? f.missing_workers : 0;
  }
  auto left = budget.available - upcoming;
  auto headroom = std::max(0.0, ratio(static_cast<double>(left), static_cast<double>(budget.limit)));
  if (headroom >= memory_reserve)
    return;
  auto why = fmt::format("{} of {} memory free ({}); the pools' workers use {}",
                         format_bytes(static_cast<double>(std::max<std::int64_t>(0, left))),
                         format_bytes(static_cast<double>(budget.limit)), percent(headroom),
                         format_bytes(static_cast<double>(pools_rss)));
  if (upcoming > 0)
    why += fmt::format(", and the {} not running yet will need about {} more",
                       count_of(missing, "worker", "workers"),
                       format_bytes(static_cast<double>(upcoming)));
  // The biggest pool that can shrink gives the most back.
  const pool_facts* biggest = nullptr;
  for (auto& f : facts)
    if (f.d.rss_per_worker_bytes > 0 && f.status->size > 1
        && (!biggest || f.d.rss_total_bytes > biggest->d.rss_total_bytes))
      biggest = &f;
  std::string action;
  if (biggest) {
    auto need = budget.reserve() - left;
    auto fewer = std::max<std::int64_t>(1, (need + biggest->d.rss_per_worker_bytes - 1)
                                             / biggest->d.rss_per_worker_bytes);
    auto size = std::max<std::int64_t>(1, biggest->status->size - fewer);
    action = fmt::format("set size = {} in [pools.{}] (frees about {}), ", size,
                         biggest->status->name,
                         format_bytes(static_cast<double>((biggest->status->size - size)
                                                          * biggest->d.rss_per_worker_bytes)));
  }
  action += "move pools whose calls mostly wait to the thread profile, or give the machine "
            "more memory";
  out.push_back(make(headroom < memory_critical ? severity::critical : severity::warning,
                     "little memory headroom", std::move(why), std::move(action),
                     "memory_headroom"));
}

/// [cpu_oversubscribed]
void cpu_rule(const std::vector<pool_facts>& facts, const machine_info& m,
              std::vector<recommendation>& out) {
  auto cores = usable_cores(m);
  if (cores == 0)
    return;
  std::uint64_t busy = 0;
  std::vector<std::string> parts;
  for (auto& f : facts) {
    if (f.waiting || f.busy_processes == 0)
      continue;
    busy += f.busy_processes;
    parts.push_back(fmt::format("{} {}", f.d.pool, f.busy_processes));
  }
  if (busy <= cores)
    return;
  out.push_back(make(severity::warning, "more busy worker processes than cores",
                     fmt::format("{} worker processes busy on {} cores ({}): beyond the cores, "
                                 "CPU-bound calls only take turns and each runs slower",
                                 busy, cores, join(parts, ", ")),
                     fmt::format("keep the CPU-bound pools' sizes at {} processes in total, or "
                                 "add cores",
                                 cores),
                     "cpu_oversubscribed"));
}

void sort_by_severity(std::vector<recommendation>& xs) {
  std::stable_sort(xs.begin(), xs.end(), [](const recommendation& a, const recommendation& b) {
    return a.level > b.level;
  });
}

} // namespace

std::string to_string(recommendation::severity x) {
  switch (x) {
    case severity::info:
      return "info";
    case severity::warning:
      return "warning";
    case severity::critical:
      return "critical";
  }
  return "info";
}

diagnosis diagnose(const machine_info& m, const std::vector<pool_status>& pools) {
  diagnosis out;
  out.machine = m;
  std::vector<pool_facts> facts;
  std::int64_t pools_rss = 0;
  for (auto& s : pools) {
    facts.push_back(measure(s, m));
    pools_rss += facts.back().d.rss_total_bytes;
  }
  auto budget = budget_of(m, pools_rss);
  for (auto& f : facts) {
    auto& recs = f.d.recommendations;
    size_rules(f, m, budget, recs);
    profile_rule(f, m, recs);
    rss_rule(f, recs);
    health_rules(f, recs);
    if (recs.empty())
      recs.push_back(make(severity::info, "no change needed",
                          fmt::format("utilisation {}, no rejections, no crashes",
                                      percent(f.d.utilisation)),
                          "", "ok"));
    sort_by_severity(recs);
    out.pools.push_back(f.d);  // a copy: the machine rules below still read the facts
  }
  memory_rule(facts, budget, pools_rss, out.recommendations);
  cpu_rule(facts, m, out.recommendations);
  if (pools.empty())
    out.recommendations.push_back(make(severity::info, "no pools to diagnose",
                                       "no pool is running", "start the tree, then look again",
                                       "no_pools"));
  sort_by_severity(out.recommendations);
  return out;
}

recommendation::severity worst(const diagnosis& d) {
  auto level = severity::info;
  for (auto& r : d.recommendations)
    level = std::max(level, r.level);
  for (auto& p : d.pools)
    for (auto& r : p.recommendations)
      level = std::max(level, r.level);
  return level;
}

namespace {

void render_recommendations(const std::vector<recommendation>& xs, std::string& out) {
  for (auto& r : xs) {
    out += fmt::format("  [{}] {}: {}\n", to_string(r.level), r.what, r.why);
    if (!r.action.empty())
      out += fmt::format("      -> {}\n", r.action);
  }
}

} // namespace

std::string render_text(const diagnosis& d) {
  auto& m = d.machine;
  auto out = fmt::format("machine: {} cores", m.cores);
  if (m.cgroup_cpu_limit)
    out += fmt::format(" (cgroup limit {:.2g} CPUs)", *m.cgroup_cpu_limit);
  out += fmt::format(", memory {} available of {}",
                     format_bytes(static_cast<double>(m.memory_available_bytes)),
                     format_bytes(static_cast<double>(m.memory_total_bytes)));
  if (m.cgroup_memory_limit_bytes)
    out += fmt::format(" (cgroup limit {})",
                       format_bytes(static_cast<double>(*m.cgroup_memory_limit_bytes)));
  if (m.cpu_pressure_10s)
    out += fmt::format(", CPU pressure {} (10 s), {} (60 s)", percent(*m.cpu_pressure_10s),
                       percent(m.cpu_pressure_60s.value_or(0)));
  if (m.load_1m)
    out += fmt::format(", load {:.2f}, {} runnable", *m.load_1m, m.runnable.value_or(0));
  if (!m.kernel.empty())
    out += ", " + m.kernel;
  out += "\n";
  render_recommendations(d.recommendations, out);
  for (auto& p : d.pools) {
    out += fmt::format("pool {}: {}, {} of {} workers ready, {} calls; utilisation {}, busy now "
                       "{}, saturation {:.1f}% ({} rejected); RSS {} ({} per worker)\n",
                       p.pool, p.profile.empty() ? "no workers" : p.profile, p.ready, p.size,
                       p.calls, percent(p.utilisation), percent(p.busy_now),
                       p.saturation * 100, p.rejected,
                       format_bytes(static_cast<double>(p.rss_total_bytes)),
                       format_bytes(static_cast<double>(p.rss_per_worker_bytes)));
    render_recommendations(p.recommendations, out);
  }
  return out;
}

namespace {

nlohmann::ordered_json to_json(const std::vector<recommendation>& xs) {
  auto out = nlohmann::ordered_json::array();
  for (auto& r : xs)
    out.push_back({{"level", to_string(r.level)},
                   {"what", r.what},
                   {"why", r.why},
                   {"action", r.action},
                   {"rule", r.rule}});
  return out;
}

template <class T>
nlohmann::ordered_json or_null(const std::optional<T>& x) {
  return x ? nlohmann::ordered_json(*x) : nlohmann::ordered_json(nullptr);
}

} // namespace

std::string render_json(const diagnosis& d) {
  auto& m = d.machine;
  // Ordered: the keys read in the order they are written.
  nlohmann::ordered_json out;
  out["worst"] = to_string(worst(d));
  out["machine"] = {{"cores", m.cores},
                    {"memory_total_bytes", m.memory_total_bytes},
                    {"memory_available_bytes", m.memory_available_bytes},
                    {"cgroup_memory_limit_bytes", or_null(m.cgroup_memory_limit_bytes)},
                    {"cgroup_cpu_limit", or_null(m.cgroup_cpu_limit)},
                    {"kernel", m.kernel},
                    {"cpu_pressure_10s", or_null(m.cpu_pressure_10s)},
                    {"cpu_pressure_60s", or_null(m.cpu_pressure_60s)},
                    {"load_1m", or_null(m.load_1m)},
                    {"runnable", or_null(m.runnable)}};
  out["recommendations"] = to_json(d.recommendations);
  auto pools = nlohmann::ordered_json::array();
  for (auto& p : d.pools)
    pools.push_back({{"pool", p.pool},
                     {"profile", p.profile},
                     {"size", p.size},
                     {"ready", p.ready},
                     {"calls", p.calls},
                     {"utilisation", p.utilisation},
                     {"busy_now", p.busy_now},
                     {"saturation", p.saturation},
                     {"rejected", p.rejected},
                     {"rss_total_bytes", p.rss_total_bytes},
                     {"rss_per_worker_bytes", p.rss_per_worker_bytes},
                     {"recommendations", to_json(p.recommendations)}});
  out["pools"] = std::move(pools);
  return out.dump(2);
}

} // namespace snakepit
