// telemetry_bench: no-op throughput of a pool with several telemetry handlers
// attached, against the same pool with none, same run.
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 telemetry_bench [--rounds 9] [--slice-ms 1500]
//        [--callers 16] [--warmup-ms 500] [--tool noop|echo] [--handlers abcd]
//
// One pool of 2 process workers (showcase adapter, recommended scheduler);
// `--callers` event-based actors keep one call in flight each for `--slice-ms`
// per slice (calls in flight at the end are waited for and counted). Every
// round runs one slice per mode, the order alternating from round to round:
//   none      no handler attached: the emitters' fast path (one atomic load)
//   handlers  four handlers as an operator would attach them, detached again
//             right after the slice:
//             (a) "*": events counted per name in a map behind a mutex;
//             (b) "snakepit.request.executed": a latency histogram (python_wall_us)
//                 per (pool, tool, outcome) behind a mutex, the key built from
//                 copies of the metadata strings, as a metrics exporter does;
//             (c) "snakepit.request.executed": queue_us summed into an atomic;
//             (d) "snakepit.worker.crashed": never fires here (a handler on another
//                 event must cost nothing).
//             `--handlers` picks some of them (e.g. `--handlers b`), to see which costs.
// calls/s = calls / wall time of the slice; host CPU per call is
// getrusage(RUSAGE_SELF) over the slice; "others' CPU" is the share of the
// machine that other processes took during the slice (/proc/stat minus this
// process and its workers). Tables show medians over rounds; ratios are ratios
// of medians. Target: calls/s, handlers / none >= 0.95. Last, the handlers'
// own cost per event on one thread, apart from any pool.

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "bench_actors.hpp"
#include "bench_common.hpp"
#include "snakepit/snakepit.hpp"

namespace {

using namespace bench;
using snakepit::telemetry_event;

/// What the handlers of the "handlers" mode keep; it outlives every round.
class operator_handlers {
public:
  /// `which`: the letters of the handlers to attach, "abcd" for all.
  explicit operator_handlers(std::string which) : which_(std::move(which)) {
    // nop
  }

  /// Attaches the chosen handlers of (a) to (d) to the global bus.
  void attach() {
    auto& bus = snakepit::telemetry::global();
    if (chosen('a'))
      ids_.push_back(bus.attach("*", [this](const telemetry_event& e) { count(e); }));
    if (chosen('b'))
      ids_.push_back(bus.attach("snakepit.request.executed",
                                [this](const telemetry_event& e) { observe(e); }));
    if (chosen('c'))
      ids_.push_back(bus.attach("snakepit.request.executed", [this](const telemetry_event& e) {
        if (auto i = e.measurements.find("queue_us"); i != e.measurements.end())
          queue_us_.fetch_add(static_cast<std::uint64_t>(i->second), std::memory_order_relaxed);
      }));
    if (chosen('d'))
      ids_.push_back(bus.attach("snakepit.worker.crashed", [this](const telemetry_event&) {
        crashed_.fetch_add(1, std::memory_order_relaxed);
      }));
  }

  /// Detaches them all; false if one was gone already (it threw).
  bool detach() {
    bool all = true;
    for (auto id : ids_)
      all = snakepit::telemetry::global().detach(id) && all;
    ids_.clear();
    return all;
  }

  /// Events the "*" handler has counted so far, all names.
  std::uint64_t events() const {
    std::lock_guard<std::mutex> guard{count_mtx_};
    std::uint64_t n = 0;
    for (auto& [name, k] : counts_)
      n += k;
    return n;
  }

  std::map<std::string, std::uint64_t> counts() const {
    std::lock_guard<std::mutex> guard{count_mtx_};
    return {counts_.begin(), counts_.end()};
  }

  /// Calls recorded in the histograms, all series.
  std::uint64_t observed() const {
    std::lock_guard<std::mutex> guard{hist_mtx_};
    std::uint64_t n = 0;
    for (auto& [key, h] : hists_)
      n += h.count;
    return n;
  }

  size_t series() const {
    std::lock_guard<std::mutex> guard{hist_mtx_};
    return hists_.size();
  }

  std::uint64_t queue_us() const {
    return queue_us_.load();
  }

  std::uint64_t crashed() const {
    return crashed_.load();
  }

private:
  // Upper bounds in microseconds, as a Prometheus exporter would configure them.
  static constexpr std::array<double, 11> bounds{50,   100,   250,   500,   1000,  2500,
                                                 5000, 10000, 25000, 50000, 100000};

  struct histogram {
    std::array<std::uint64_t, bounds.size() + 1> buckets{};
    double sum = 0;
    std::uint64_t count = 0;
  };

  using labels = std::array<std::string, 3>;  // pool, tool, outcome

  static std::string label(const telemetry_event& e, const char* key) {
    auto i = e.metadata.find(key);
    return i == e.metadata.end() ? std::string{} : i->second;
  }

  void count(const telemetry_event& e) {
    std::lock_guard<std::mutex> guard{count_mtx_};
    ++counts_[e.name];
  }

  void observe(const telemetry_event& e) {
    // The event names the worker ("<pool>/w<N>"); an exporter labels by pool.
    auto pool = label(e, "pool");
    if (pool.empty()) {
      pool = label(e, "worker");
      pool = pool.substr(0, pool.find('/'));
    }
    labels key{std::move(pool), label(e, "tool"), label(e, "outcome")};
    auto i = e.measurements.find("python_wall_us");
    double us = i == e.measurements.end() ? 0.0 : i->second;
    size_t bucket = 0;
    while (bucket < bounds.size() && us > bounds[bucket])
      ++bucket;
    std::lock_guard<std::mutex> guard{hist_mtx_};
    auto& h = hists_[std::move(key)];
    ++h.buckets[bucket];
    h.sum += us;
    ++h.count;
  }

  bool chosen(char letter) const {
    return which_.find(letter) != std::string::npos;
  }

  std::string which_;
  std::vector<std::uint64_t> ids_;
  mutable std::mutex count_mtx_;
  std::unordered_map<std::string, std::uint64_t> counts_;
  mutable std::mutex hist_mtx_;
  std::map<labels, histogram> hists_;
  std::atomic<std::uint64_t> queue_us_{0};
  std::atomic<std::uint64_t> crashed_{0};
};

/// CPU time of the calling thread, ns (not inflated when another process
/// takes the CPU away).
double thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

/// Builds an event shaped like the worker's "snakepit.request.executed" and
/// emits it (if `emit`), `n` times from this thread: CPU ns per event.
double emit_ns(int n, bool emit) {
  auto& bus = snakepit::telemetry::global();
  auto t0 = thread_cpu_ns();
  for (int i = 0; i < n; ++i) {
    telemetry_event e;
    e.name = "snakepit.request.executed";
    e.measurements = {{"queue_us", 2000.0 + i % 7}, {"python_wall_us", 40.0 + i % 13},
                      {"python_cpu_us", 38.0}};
    e.metadata = {{"worker", "telemetry/w1"},
                  {"tool", "noop"},
                  {"request_id", "telemetry-" + std::to_string(1000000 + i)},
                  {"outcome", "ok"}};
    if (emit)
      bus.emit(e);
  }
  return (thread_cpu_ns() - t0) / n;
}

struct mode {
  std::string name;
  bool handlers = false;
  round_samples s;
  std::vector<double> host_cpu_us, host_vcs, others;
};

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int rounds = int_option(argc, argv, "--rounds", 9);
  auto slice = std::chrono::milliseconds{int_option(argc, argv, "--slice-ms", 1500)};
  auto warmup = std::chrono::milliseconds{int_option(argc, argv, "--warmup-ms", 500)};
  int callers = int_option(argc, argv, "--callers", 16);
  auto tool = string_option(argc, argv, "--tool", "noop");
  auto which = string_option(argc, argv, "--handlers", "abcd");
  if (tool != "noop" && tool != "echo") {
    fmt::print(stderr, "--tool must be noop or echo\n");
    return 2;
  }
  snakepit::set_log_level(snakepit::log_level::warning);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};

  auto started = start_showcase_pool(sys, "telemetry", 2);
  if (!started) {
    fmt::print(stderr, "pool failed to start: {}\n", snakepit::describe(started.error()).message);
    return 1;
  }
  auto pool = *started;
  std::vector<int> worker_pids;
  for (auto& w : pool_status_of(sys, pool).workers)
    worker_pids.push_back(w.pid);
  const auto cpus = static_cast<double>(::sysconf(_SC_NPROCESSORS_ONLN));
  const std::string payload = tool == "echo" ? std::string(1024, 'x') : std::string{};
  auto send = pool_sender(pool, [tool, payload] { return pool_request(tool, payload); });

  operator_handlers handlers{which};
  std::vector<mode> ms{{"none", false, {}, {}, {}, {}}, {"handlers", true, {}, {}, {}, {}}};
  fmt::print("telemetry_bench: 2 process workers, {} callers, tool {}, {} rounds x {} ms per "
             "mode; handlers {} of (a) * counter, (b) executed histogram, (c) executed "
             "queue_us sum, (d) worker.crashed\n",
             callers, tool, rounds, slice.count(), which);

  // Unrecorded: connections, first calls, the handlers' maps filled.
  handlers.attach();
  event_callers_for(sys, send, callers, warmup);
  handlers.detach();
  event_callers_for(sys, send, callers, warmup);

  table per_round({"round", "mode", "calls/s", "p50 us", "p99 us", "host CPU us/call",
                   "host vol.sw/call", "others' CPU",
                   "events/call", "failed"});
  bool detached_all = true;
  bool foreign_handlers = false;  // someone else's handler attached in a "none" slice
  auto t_all = clk::now();
  for (int r = 0; r < rounds; ++r) {
    for (int j = 0; j < 2; ++j) {
      auto& m = ms[static_cast<size_t>((r + j) % 2)];
      auto events0 = handlers.events();
      if (m.handlers)
        handlers.attach();
      else if (snakepit::telemetry::global().enabled())
        foreign_handlers = true;
      auto busy0 = machine_busy_s();
      auto w0 = threads_cpu_s(worker_pids);
      auto h0 = proc_usage::now();
      auto res = event_callers_for(sys, send, callers, slice);
      auto used = proc_usage::now() - h0;
      // What other processes took of the machine during the slice.
      auto others = (machine_busy_s() - busy0 - used.cpu_s - (threads_cpu_s(worker_pids) - w0))
                    / (res.wall_s * cpus);
      if (m.handlers)
        detached_all = handlers.detach() && detached_all;
      auto n = static_cast<double>(res.calls);
      auto events_per_call = static_cast<double>(handlers.events() - events0) / n;
      m.s.add(res);
      m.host_cpu_us.push_back(used.cpu_s * 1e6 / n);
      m.host_vcs.push_back(static_cast<double>(used.vol_switches) / n);
      m.others.push_back(std::max(0.0, others * 100));
      per_round.add({std::to_string(r + 1), m.name, fixed(res.calls_per_s()),
                     fixed(m.s.p50.back()), fixed(m.s.p99.back()), fixed(m.host_cpu_us.back(), 1),
                     fixed(m.host_vcs.back(), 2),
                     fmt::format("{:.0f}%", m.others.back()),
                     fixed(events_per_call, 2), std::to_string(res.failures)});
    }
  }
  auto total_s = ms_between(t_all, clk::now()) / 1000.0;
  fmt::print("\nPer round\n");
  per_round.print();

  fmt::print("\nPer mode: medians over {} rounds\n", rounds);
  table t({"mode", "calls/s", "p50 us", "p99 us", "host CPU us/call", "host vol.sw/call",
           "others' CPU", "calls", "failed"});
  for (auto& m : ms)
    t.add({m.name, fixed(median(m.s.rate)), fixed(median(m.s.p50)), fixed(median(m.s.p99)),
           fixed(median(m.host_cpu_us), 1), fixed(median(m.host_vcs), 2),
           fmt::format("{:.0f}%", median(m.others)), std::to_string(m.s.calls),
           std::to_string(m.s.failures)});
  t.print();

  fmt::print("\nWhat the handlers saw (warm-up and handler slices)\n");
  table seen({"what", "value"});
  for (auto& [name, k] : handlers.counts())
    seen.add({"(a) events " + name, std::to_string(k)});
  seen.add({"(b) calls in histograms / series", fmt::format("{} / {}", handlers.observed(),
                                                             handlers.series())});
  seen.add({"(c) queue_us summed", std::to_string(handlers.queue_us())});
  seen.add({"(d) worker.crashed", std::to_string(handlers.crashed())});
  seen.print();
  auto observed_calls = handlers.observed();

  // The handlers' own cost, without gRPC and Python around it: one thread,
  // no contention on their mutexes; the three ways in alternating chunks
  // (medians over chunks). Emitters skip building the event while no handler
  // is attached.
  const int chunks = 20, chunk = 10000;
  std::vector<double> build_ns, bare_ns, handled_ns;
  emit_ns(chunk, true);
  for (int c = 0; c < chunks; ++c) {
    build_ns.push_back(emit_ns(chunk, false));
    bare_ns.push_back(emit_ns(chunk, true));
    handlers.attach();
    handled_ns.push_back(emit_ns(chunk, true));
    handlers.detach();
  }
  double build = median(build_ns), handled = median(handled_ns);
  fmt::print("\nOne event from this thread, CPU ns per event (medians over {} chunks of {})\n",
             chunks, chunk);
  table et({"what", "ns"});
  et.add({"build the event", fixed(build)});
  et.add({"build + emit, no handler attached", fixed(median(bare_ns))});
  et.add({"build + emit, the handlers attached", fixed(handled)});
  et.add({"the handlers: attached - build", fixed(handled - build)});
  et.print();

  auto& none = ms[0];
  auto& with = ms[1];
  double rate_ratio = median(with.s.rate) / median(none.s.rate);
  double p50_ratio = median(with.s.p50) / median(none.s.p50);
  double p99_ratio = median(with.s.p99) / median(none.s.p99);
  double cpu_ratio = median(with.host_cpu_us) / median(none.host_cpu_us);
  std::uint64_t failed = none.s.failures + with.s.failures;
  // Each round's handlers slice over its none slice (neighbours in time).
  std::vector<double> paired;
  for (size_t r = 0; r < none.s.rate.size(); ++r)
    paired.push_back(with.s.rate[r] / none.s.rate[r]);
  double others_max = 0;
  for (auto& m : ms)
    others_max = std::max(others_max, *std::max_element(m.others.begin(), m.others.end()));
  fmt::print("\nRatios of medians, handlers / none\n");
  table rt({"ratio", "value", "target", "verdict"});
  rt.add({"calls/s", fixed(rate_ratio, 3), ">= 0.95", verdict(rate_ratio >= 0.95)});
  rt.add({"calls/s, median of each round's handlers / none", fixed(median(paired), 3),
          "report", ""});
  rt.add({"p50", fixed(p50_ratio, 3), "report", ""});
  rt.add({"p99", fixed(p99_ratio, 3), "report", ""});
  rt.add({"host CPU per call", fixed(cpu_ratio, 3), "report", ""});
  rt.add({"host voluntary switches per call",
          fixed(median(with.host_vcs) / median(none.host_vcs), 3), "report", ""});
  rt.add({"failed calls (both modes)", std::to_string(failed), "0", verdict(failed == 0)});
  rt.print();

  auto tag = fmt::format("telemetry.{}", tool);
  for (auto& m : ms) {
    result_line(tag, m.name + "_calls_per_s", median(m.s.rate));
    result_line(tag, m.name + "_p50_us", median(m.s.p50));
    result_line(tag, m.name + "_p99_us", median(m.s.p99));
    result_line(tag, m.name + "_host_cpu_us", median(m.host_cpu_us));
    result_line(tag, m.name + "_host_vcs", median(m.host_vcs));
  }
  result_line(tag, "rate_ratio", rate_ratio);
  result_line(tag, "paired_rate_ratio", median(paired));
  result_line(tag, "others_max_percent", others_max);
  result_line(tag, "p50_ratio", p50_ratio);
  result_line(tag, "p99_ratio", p99_ratio);
  result_line(tag, "host_cpu_ratio", cpu_ratio);
  result_line(tag, "failed", static_cast<double>(failed));
  result_line(tag, "build_event_ns", build);
  result_line(tag, "handled_event_ns", handled);
  fmt::print("\n(measured in {:.1f} s; other processes took at most {:.0f}% of the machine's "
             "CPU in a slice{})\n",
             total_s, others_max,
             others_max > 15 ? ": the numbers may be disturbed, rerun on an idle machine" : "");

  int code = 0;
  if (failed > 0) {
    fmt::print(stderr, "telemetry_bench: {} calls failed\n", failed);
    code = 1;
  }
  if (foreign_handlers) {
    fmt::print(stderr, "telemetry_bench: a handler not ours was attached in a \"none\" slice\n");
    code = 1;
  }
  if (!detached_all || handlers.crashed() > 0
      || (which.find('b') != std::string::npos && observed_calls == 0)) {
    fmt::print(stderr, "telemetry_bench: a handler threw, never ran, or a worker crashed\n");
    code = 1;
  }
  stop_pool_within(sys, pool);
  return finish(code);
}
