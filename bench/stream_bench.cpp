// stream_bench: streaming throughput against the same data returned by unary
// calls, same run; then session-routed call latency against unrouted.
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 stream_bench [--rounds 7] [--small-n 2000]
//        [--large-n 50] [--session-calls 1000]
//
// Part 1: one pool of 1 process worker (showcase adapter, recommended
// scheduler). For item sizes 1 KiB (`--small-n` items) and 1 MiB (`--large-n`
// items), every round runs each mode once, the order rotating from round to
// round:
//   stream-w16  one stream of `blobs(n, size)` with the pool's default window
//               (stream_window 16); an event-based consumer acks each item
//               as it arrives
//   stream-w64  the same with the request's stream_window = 64
//   unary       n sequential unary calls of `make_bytes(size)` from one
//               event-based caller (one item of `size` bytes per call)
// items/s = n / wall time (from sending the request to the end marker, or
// from the first call to the last reply); MB/s = n * size / wall / 1e6.
//
// Part 2: a pool of 2 process workers (affinity "hint"); one event-based
// caller makes `--session-calls` sequential `noop` calls with a session id
// (opened once), then without, the order alternating by round; p50/p99.
//
// "others' CPU": the share of the machine other processes took during the
// slice (/proc/stat minus this process and its workers). Tables show medians
// over rounds; ratios are ratios of medians.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "bench_actors.hpp"
#include "bench_common.hpp"
#include "snakepit/snakepit.hpp"

namespace {

using namespace bench;
using namespace std::chrono_literals;

/// One stream driven to its end by an event-based consumer.
struct stream_run {
  std::uint64_t items = 0;
  std::uint64_t bytes = 0;
  bool in_order = true;
  bool ok = false;
  std::string error;
  double wall_s = 0;
  std::promise<void> done;
};

/// Streams `blobs(n, size)` with `window` (0: the pool's) into a fresh
/// event-based consumer that acks one credit per item; blocks until the end.
std::shared_ptr<stream_run> run_stream(caf::actor_system& sys, const snakepit::pool_actor& pool,
                                       int n, int size, std::uint32_t window) {
  auto run = std::make_shared<stream_run>();
  auto finished = run->done.get_future();
  auto t0 = clk::now();
  sys.spawn([pool, run, n, size, window, t0](caf::event_based_actor* self) -> caf::behavior {
    auto req = snakepit::make_request("blobs", {{"n", n}, {"size", size}}, 300s);
    req.stream_window = window;
    // The handle arrives before the first item; acks are kept for later in case not.
    auto worker = std::make_shared<caf::actor>();
    auto pending = std::make_shared<std::uint32_t>(0);
    auto stream_id = std::make_shared<std::uint64_t>(0);
    auto end = [self, run, t0](bool ok, std::string err) {
      run->wall_s = ms_between(t0, clk::now()) / 1000.0;
      run->ok = ok;
      run->error = std::move(err);
      run->done.set_value();
      self->quit();
    };
    self->request(pool, caf::infinite, snakepit::execute_stream_atom::value, req,
                  caf::actor_cast<caf::actor>(self))
      .then(
        [=](snakepit::stream_handle& h) {
          *worker = h.worker;
          *stream_id = h.id;
          if (*pending > 0)
            caf::anon_send(*worker, snakepit::stream_ack_atom::value, h.id, *pending);
          *pending = 0;
        },
        [=](caf::error& e) { end(false, snakepit::describe(e).message); });
    return {
      [=](snakepit::stream_item_atom, std::uint64_t id, std::uint64_t index,
          snakepit::value& v) {
        run->in_order = run->in_order && index == run->items;
        ++run->items;
        if (auto* b = v.if_bytes())
          run->bytes += b->data.size();
        if (*worker)
          caf::anon_send(*worker, snakepit::stream_ack_atom::value, id, std::uint32_t{1});
        else
          ++*pending;
      },
      [=](snakepit::stream_end_atom, std::uint64_t, snakepit::stream_summary&) {
        end(true, {});
      },
      [=](snakepit::stream_error_atom, std::uint64_t, caf::error& e) {
        end(false, snakepit::describe(e).message);
      },
    };
  });
  finished.wait();
  return run;
}

/// CPU seconds of the processes `pids` so far, threads that ended included
/// (/proc/<pid>/stat utime + stime).
double procs_cpu_s(const std::vector<int>& pids) {
  static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  double total = 0;
  for (auto pid : pids) {
    auto stat = read_first_line("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos)
      continue;
    std::istringstream fields{stat.substr(close + 2)};
    std::string field;
    for (int i = 3; i <= 15 && (fields >> field); ++i)
      if (i == 14 || i == 15)
        total += static_cast<double>(std::atol(field.c_str())) / ticks;
  }
  return total;
}

/// Others' share of the machine during a slice (percent), given the samples
/// taken before it.
struct busy_probe {
  std::vector<int> pids;
  double cpus = static_cast<double>(::sysconf(_SC_NPROCESSORS_ONLN));
  double busy0 = 0, workers0 = 0;
  proc_usage host0;
  clk::time_point t0;

  void start() {
    busy0 = machine_busy_s();
    workers0 = procs_cpu_s(pids);
    host0 = proc_usage::now();
    t0 = clk::now();
  }

  double others_percent() const {
    auto wall = ms_between(t0, clk::now()) / 1000.0;
    auto used = proc_usage::now() - host0;
    auto others = machine_busy_s() - busy0 - used.cpu_s - (procs_cpu_s(pids) - workers0);
    return std::max(0.0, others / (wall * cpus) * 100);
  }
};

std::vector<int> worker_pids(caf::actor_system& sys, const snakepit::pool_actor& pool) {
  std::vector<int> out;
  for (auto& w : pool_status_of(sys, pool).workers)
    out.push_back(w.pid);
  return out;
}

struct tput_mode {
  std::string name;
  std::uint32_t window = 0;  // stream window; unary when `unary`
  bool unary = false;
  std::vector<double> items_per_s, mb_per_s, others;
  std::uint64_t failures = 0;
};

struct size_case {
  std::string label;
  int size = 0;
  int n = 0;
  std::vector<tput_mode> modes;
};

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int rounds = int_option(argc, argv, "--rounds", 7);
  int small_n = int_option(argc, argv, "--small-n", 2000);
  int large_n = int_option(argc, argv, "--large-n", 50);
  int session_calls = int_option(argc, argv, "--session-calls", 1000);
  snakepit::set_log_level(snakepit::log_level::warning);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};
  int code = 0;
  auto t_all = clk::now();
  double others_max = 0;

  // -- part 1: stream vs unary ------------------------------------------------------------
  auto started = start_showcase_pool(sys, "stream", 1, [](snakepit::pool_config& pc) {
    pc.max_payload_bytes = 64LL * 1024 * 1024;  // the default; 1 MiB items fit well
  });
  if (!started) {
    fmt::print(stderr, "pool failed to start: {}\n", snakepit::describe(started.error()).message);
    return 1;
  }
  auto pool = *started;
  busy_probe probe;
  probe.pids = worker_pids(sys, pool);

  auto make_modes = [] {
    return std::vector<tput_mode>{{"stream-w16", 0, false, {}, {}, {}, 0},
                                  {"stream-w64", 64, false, {}, {}, {}, 0},
                                  {"unary", 0, true, {}, {}, {}, 0}};
  };
  std::vector<size_case> cases{{"1KiB", 1024, small_n, make_modes()},
                               {"1MiB", 1024 * 1024, large_n, make_modes()}};
  fmt::print("stream_bench: 1 process worker; blobs(n, size) streamed (window 16 = pool "
             "default, 64) vs n sequential unary make_bytes(size); 1 KiB x {}, 1 MiB x {}; "
             "{} rounds\n",
             small_n, large_n, rounds);

  // One slice of one mode: items/s, MB/s, failures.
  auto slice = [&](size_case& c, tput_mode& m) {
    std::uint64_t items = 0, bytes = 0, failed = 0;
    double wall = 0;
    if (m.unary) {
      auto req = snakepit::make_request("make_bytes", {{"size", c.size}}, 300s);
      auto sizes = std::make_shared<std::uint64_t>(0);
      auto send = [pool, req, sizes](caf::event_based_actor* self, auto k) {
        self->request(pool, caf::infinite, snakepit::execute_atom::value, req)
          .then(
            [k, sizes](snakepit::execute_reply& r) mutable {
              auto* b = r.result.if_bytes();
              if (b != nullptr)
                *sizes += b->data.size();
              k(b != nullptr);
            },
            [k](caf::error&) mutable { k(false); });
      };
      auto res = event_caller_run(sys, send, c.n);
      items = res.calls - res.failures;
      bytes = *sizes;
      failed = res.failures;
      wall = res.wall_s;
    } else {
      auto run = run_stream(sys, pool, c.n, c.size, m.window);
      items = run->items;
      bytes = run->bytes;
      wall = run->wall_s;
      if (!run->ok || !run->in_order) {
        fmt::print(stderr, "stream {} {} failed: {}\n", c.label, m.name, run->error);
        ++failed;
      }
    }
    if (items != static_cast<std::uint64_t>(c.n)
        || bytes != static_cast<std::uint64_t>(c.n) * static_cast<std::uint64_t>(c.size))
      failed = std::max<std::uint64_t>(failed, 1);
    return std::make_tuple(static_cast<double>(items) / wall,
                           static_cast<double>(bytes) / wall / 1e6, failed);
  };

  // Unrecorded: connections, the first stream and calls of each kind.
  for (auto& c : cases)
    for (auto& m : c.modes) {
      auto n = c.n;
      c.n = std::max(1, n / 10);
      slice(c, m);
      c.n = n;
    }

  table per_round({"round", "size", "mode", "items/s", "MB/s", "others' CPU", "failed"});
  for (int r = 0; r < rounds; ++r)
    for (auto& c : cases)
      for (size_t j = 0; j < c.modes.size(); ++j) {
        auto& m = c.modes[(static_cast<size_t>(r) + j) % c.modes.size()];
        probe.start();
        auto [ips, mbs, failed] = slice(c, m);
        auto others = probe.others_percent();
        m.items_per_s.push_back(ips);
        m.mb_per_s.push_back(mbs);
        m.others.push_back(others);
        m.failures += failed;
        others_max = std::max(others_max, others);
        per_round.add({std::to_string(r + 1), c.label, m.name, fixed(ips), fixed(mbs, 1),
                       fmt::format("{:.0f}%", others), std::to_string(failed)});
      }
  fmt::print("\nPer round\n");
  per_round.print();
  stop_pool_within(sys, pool);

  fmt::print("\nThroughput: medians over {} rounds\n", rounds);
  table tt({"size", "n", "mode", "items/s", "MB/s", "others' CPU", "failed",
            "/ unary"});
  std::uint64_t tput_failed = 0;
  for (auto& c : cases) {
    double unary_rate = median(c.modes[2].items_per_s);
    for (auto& m : c.modes) {
      tput_failed += m.failures;
      tt.add({c.label, std::to_string(c.n), m.name, fixed(median(m.items_per_s)),
              fixed(median(m.mb_per_s), 1), fmt::format("{:.0f}%", median(m.others)),
              std::to_string(m.failures), fixed(median(m.items_per_s) / unary_rate, 2)});
    }
  }
  tt.print();
  for (auto& c : cases) {
    auto tag = "stream." + c.label;
    double unary_rate = median(c.modes[2].items_per_s);
    for (auto& m : c.modes) {
      result_line(tag, m.name + "_items_per_s", median(m.items_per_s));
      result_line(tag, m.name + "_mb_per_s", median(m.mb_per_s));
    }
    result_line(tag, "w16_over_unary", median(c.modes[0].items_per_s) / unary_rate);
    result_line(tag, "w64_over_unary", median(c.modes[1].items_per_s) / unary_rate);
  }

  // -- part 2: session-routed vs unrouted latency ------------------------------------------
  auto started2 = start_showcase_pool(sys, "sessions", 2, [](snakepit::pool_config& pc) {
    pc.affinity = snakepit::affinity_mode::hint;
  });
  if (!started2) {
    fmt::print(stderr, "pool failed to start: {}\n",
               snakepit::describe(started2.error()).message);
    return finish(1);
  }
  auto pool2 = *started2;
  probe.pids = worker_pids(sys, pool2);
  std::string session;
  {
    caf::scoped_actor self{sys};
    self->request(pool2, 10s, snakepit::open_session_atom::value, std::string{})
      .receive([&](std::string& id) { session = id; },
               [&](caf::error& e) {
                 fmt::print(stderr, "open session: {}\n", snakepit::describe(e).message);
               });
  }
  if (session.empty()) {
    stop_pool_within(sys, pool2);
    return finish(1);
  }
  struct lat_mode {
    std::string name;
    bool routed;
    round_samples s;
    std::vector<double> others;
  };
  std::vector<lat_mode> lm{{"unrouted", false, {}, {}}, {"session", true, {}, {}}};
  auto sender = [&](bool routed) {
    return pool_sender(pool2, [routed, session] {
      auto req = snakepit::make_request("noop");
      if (routed)
        req.session_id = session;
      return req;
    });
  };
  fmt::print("\nSessions: 2 process workers, affinity hint, {} sequential noop calls per "
             "slice, {} rounds\n",
             session_calls, rounds);
  for (auto& m : lm)
    event_caller_run(sys, sender(m.routed), std::max(50, session_calls / 5));
  table lr({"round", "mode", "calls/s", "p50 us", "p99 us", "others' CPU", "failed"});
  for (int r = 0; r < rounds; ++r)
    for (int j = 0; j < 2; ++j) {
      auto& m = lm[static_cast<size_t>((r + j) % 2)];
      probe.start();
      auto res = event_caller_run(sys, sender(m.routed), session_calls);
      auto others = probe.others_percent();
      others_max = std::max(others_max, others);
      m.s.add(res);
      m.others.push_back(others);
      lr.add({std::to_string(r + 1), m.name, fixed(res.calls_per_s()), fixed(m.s.p50.back()),
              fixed(m.s.p99.back()), fmt::format("{:.0f}%", others),
              std::to_string(res.failures)});
    }
  lr.print();
  // Where the session's calls ran: all on one worker is the point of routing.
  std::string session_workers;
  {
    caf::scoped_actor self{sys};
    std::map<std::string, int> seen;
    for (int i = 0; i < 20; ++i) {
      auto req = snakepit::make_request("noop");
      req.session_id = session;
      self->request(pool2, 10s, snakepit::execute_atom::value, req)
        .receive([&](snakepit::execute_reply& r) { ++seen[r.worker_id]; },
                 [&](caf::error&) { ++seen["error"]; });
    }
    for (auto& [w, k] : seen)
      session_workers += fmt::format("{}{} x{}", session_workers.empty() ? "" : ", ", w, k);
  }
  stop_pool_within(sys, pool2);

  fmt::print("\nLatency: medians over {} rounds\n", rounds);
  table lt({"mode", "calls/s", "p50 us", "p99 us", "others' CPU", "calls", "failed"});
  for (auto& m : lm) {
    lt.add({m.name, fixed(median(m.s.rate)), fixed(median(m.s.p50)), fixed(median(m.s.p99)),
            fmt::format("{:.0f}%", median(m.others)), std::to_string(m.s.calls),
            std::to_string(m.s.failures)});
  }
  lt.print();
  for (auto& m : lm) {
    result_line("session", m.name + "_p50_us", median(m.s.p50));
    result_line("session", m.name + "_p99_us", median(m.s.p99));
    result_line("session", m.name + "_calls_per_s", median(m.s.rate));
  }
  fmt::print("20 session calls after the rounds ran on: {}\n", session_workers);
  double p50_ratio = median(lm[1].s.p50) / median(lm[0].s.p50);
  double p99_ratio = median(lm[1].s.p99) / median(lm[0].s.p99);
  result_line("session", "p50_ratio", p50_ratio);
  result_line("session", "p99_ratio", p99_ratio);
  std::uint64_t lat_failed = lm[0].s.failures + lm[1].s.failures;

  fmt::print("\nSummary (ratios of medians)\n");
  table st({"measure", "value"});
  for (auto& c : cases) {
    double u = median(c.modes[2].items_per_s);
    st.add({c.label + " items/s, stream w16 / unary", fixed(median(c.modes[0].items_per_s) / u, 2)});
    st.add({c.label + " items/s, stream w64 / unary", fixed(median(c.modes[1].items_per_s) / u, 2)});
  }
  st.add({"noop p50, session / unrouted", fixed(p50_ratio, 3)});
  st.add({"noop p99, session / unrouted", fixed(p99_ratio, 3)});
  st.add({"failed (streams + calls)", std::to_string(tput_failed + lat_failed)});
  st.print();
  result_line("stream", "failed", static_cast<double>(tput_failed + lat_failed));
  result_line("stream", "others_max_percent", others_max);
  fmt::print("\n(measured in {:.1f} s; other processes took at most {:.0f}% of the machine's "
             "CPU in a slice{})\n",
             ms_between(t_all, clk::now()) / 1000.0, others_max,
             others_max > 15 ? ": the numbers may be disturbed, rerun on an idle machine" : "");
  if (tput_failed + lat_failed > 0) {
    fmt::print(stderr, "stream_bench: {} streams or calls failed\n", tput_failed + lat_failed);
    code = 1;
  }
  return finish(code);
}
