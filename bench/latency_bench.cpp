// latency_bench: one call at a time, through the pool and through its floors,
// side by side against the very same Python worker process.
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 latency_bench [--scheduler recommended|default]
//                                                  [--rounds 5] [--calls 1500] [--warmup 200]
//
// One pool of one worker is started; the floors connect to that worker's own
// socket (found in the host's runtime directory). Every round runs each
// variant in turn (warm-up calls, then `--calls` measured calls); the table
// shows the median over rounds of each round's p50 / p99 / mean, and ratios
// of those medians. Host CPU and context switches come from getrusage and
// /proc; the worker's switches from /proc/<pid>/task.
//
// Variants (all to the pool's worker unless said otherwise):
//   raw            C++ gRPC callback API, no actors; each completion starts the next call
//   raw-sync       C++ gRPC blocking stub from the main thread
//   raw+deadline   raw, with a gRPC deadline and timeout_ms on every call as the worker
//                  actor sets them (60 s ahead)
//   actor          an event-based caller -> one plain CAF actor that makes the same async
//                  gRPC call and replies when the callback has messaged it back
//   actor+timer    the same, plus one delayed_send(60 s) per call (what the worker actor does)
//   actor+deadline the same as actor, plus a gRPC deadline and timeout_ms per call (ditto)
//   actor+both     timer and deadline: everything the worker actor adds per call, without
//                  the pool and worker actors themselves
//   actor-scoped   a scoped_actor caller -> the same plain actor
//   pool           an event-based caller -> pool actor -> worker actor -> gRPC
//   pool-scoped    a scoped_actor caller (what the demo uses) -> pool
//   pool2-scoped   what the demo does: a scoped_actor calling a pool of 2 workers in a
//                  loop (calls alternate between the two processes); worker switches
//                  are those of one of the two
//   *-echo1k       tool `echo` with a 1 KiB string instead of `noop`
//   raw-async      raw client, the showcase's `async def` tool async_sleep(seconds=0):
//                  no run_in_executor hop in the worker
//   raw-min-aio    raw client to bench/min_aio_server.py: grpc.aio, empty handler
//   raw-min-exec   the same server with one run_in_executor hop per call
//   raw-min-encode the same hop, plus the result encoding a snakepit pool thread does
//   raw-min-disp   the same server calling snakepit_bridge's Dispatcher (no server.py)
//   raw-min-sync   grpc.server (sync, thread pool) instead of grpc.aio, encoding like
//                  raw-min-encode on the gRPC thread: one hop fewer
//   thread-pingpong  no RPC: two threads of this process wake each other through a
//                  condition variable; one "call" = one round trip = two wake-ups

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "bench_actors.hpp"
#include "bench_common.hpp"
#include "snakepit/snakepit.hpp"

namespace bench_latency {

using fcall_atom = caf::atom_constant<caf::atom("fcall")>;
using fdone_atom = caf::atom_constant<caf::atom("fdone")>;
using ftimer_atom = caf::atom_constant<caf::atom("ftimer")>;

/// One call of the plain-actor floor: everything gRPC needs, kept alive by the callback.
struct floor_call {
  std::uint64_t seq = 0;
  grpc::ClientContext ctx;
  snakepit::bridge::v1::ExecuteRequest req;
  snakepit::bridge::v1::ExecuteResponse resp;
  grpc::Status status;
};

using floor_call_ptr = std::shared_ptr<floor_call>;

} // namespace bench_latency

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bench_latency::floor_call_ptr)

namespace bench_latency {

using namespace bench;
using snakepit::execute_atom;
using snakepit::execute_reply;
using snakepit::pool_actor;

// -- the plain-actor floor ----------------------------------------------------------------

struct proxy_state {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<snakepit::bridge::v1::Worker::Stub> stub;
  std::uint64_t next_seq = 0;
  std::unordered_map<std::uint64_t, caf::typed_response_promise<std::string>> pending;
  bool with_timer = false;
  bool with_deadline = false;
};

/// Receives (fcall, tool, payload), makes the async gRPC call, and answers the
/// caller once the gRPC callback has sent the finished call back to it.
/// `with_timer`: also one delayed_send(60 s) per call; `with_deadline`: also a
/// gRPC deadline 61 s ahead and timeout_ms, as the worker actor does.
caf::behavior proxy_actor(caf::stateful_actor<proxy_state>* self, std::string socket,
                          bool with_timer, bool with_deadline) {
  self->state.channel = make_channel(socket);
  self->state.stub = snakepit::bridge::v1::Worker::NewStub(self->state.channel);
  self->state.with_timer = with_timer;
  self->state.with_deadline = with_deadline;
  return {
    [self](fcall_atom, std::string& tool, std::string& payload) -> caf::result<std::string> {
      thread_roles::get().mark("caf-sched");
      auto& st = self->state;
      auto call = std::make_shared<floor_call>();
      call->seq = ++st.next_seq;
      call->req.set_tool(std::move(tool));
      if (!payload.empty()) {
        auto* entry = call->req.mutable_arguments()->add_entries();
        entry->set_key("value");
        entry->mutable_value()->set_string_value(std::move(payload));
      }
      auto rp = self->make_response_promise<std::string>();
      st.pending.emplace(call->seq, rp);
      if (st.with_timer)
        self->delayed_send(self, std::chrono::seconds{60}, ftimer_atom::value, call->seq);
      if (st.with_deadline) {
        call->req.set_timeout_ms(60000);
        call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds{61});
      }
      auto* raw = call.get();
      auto handle = caf::actor_cast<caf::actor>(self);
      st.stub->async()->Execute(&raw->ctx, &raw->req, &raw->resp,
                                [handle, call](grpc::Status status) mutable {
                                  thread_roles::get().mark("grpc-cb");
                                  call->status = std::move(status);
                                  caf::anon_send(handle, fdone_atom::value, std::move(call));
                                });
      return rp;
    },
    [self](fdone_atom, floor_call_ptr& call) {
      thread_roles::get().mark("caf-sched");
      auto i = self->state.pending.find(call->seq);
      if (i == self->state.pending.end())
        return;
      if (call->status.ok() && !call->resp.has_error())
        i->second.deliver(std::move(*call->resp.mutable_result()->mutable_string_value()));
      else
        i->second.deliver(caf::make_error(caf::sec::runtime_error, "floor call failed"));
      self->state.pending.erase(i);
    },
    [](ftimer_atom, std::uint64_t) {},
  };
}

// -- the price of one wake-up on this machine ---------------------------------------------

/// Two threads hand a token back and forth through a mutex and condition
/// variables; one round trip = two wake-ups of a sleeping thread. This is what
/// every hop on the call paths costs at least.
run_result pingpong_run(int n) {
  std::mutex mtx;
  std::condition_variable to_peer, to_main;
  int turn = 0;  // 0: main's turn, 1: peer's turn, 2: stop
  std::thread peer{[&] {
    std::unique_lock<std::mutex> guard{mtx};
    for (;;) {
      to_peer.wait(guard, [&] { return turn != 0; });
      if (turn == 2)
        return;
      turn = 0;
      to_main.notify_one();
    }
  }};
  run_result out;
  out.lat_us.reserve(static_cast<size_t>(n));
  auto start = clk::now();
  for (int i = 0; i < n; ++i) {
    auto t0 = clk::now();
    std::unique_lock<std::mutex> guard{mtx};
    turn = 1;
    to_peer.notify_one();
    to_main.wait(guard, [&] { return turn == 0; });
    guard.unlock();
    out.lat_us.push_back(us_between(t0, clk::now()));
  }
  out.wall_s = ms_between(start, clk::now()) / 1000.0;
  {
    std::lock_guard<std::mutex> guard{mtx};
    turn = 2;
  }
  to_peer.notify_one();
  peer.join();
  out.calls = out.lat_us.size();
  return out;
}

// -- variants ---------------------------------------------------------------------------

struct variant {
  std::string name;
  int target_pid = 0;
  std::function<run_result(int)> run;
  // per round
  std::vector<double> p50, p99, mean, rate, cpu_us, host_vcs, worker_vcs;
  // over all rounds
  std::map<int, thread_info> host_threads, worker_threads;
  long calls = 0;
  std::uint64_t failures = 0;

  double m(const std::vector<double>& xs) const {
    return median(xs);
  }
};

} // namespace bench_latency

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  using namespace bench;
  using namespace bench_latency;
  auto scheduler = string_option(argc, argv, "--scheduler", "recommended");
  int rounds = int_option(argc, argv, "--rounds", 5);
  int calls = int_option(argc, argv, "--calls", 1500);
  int warmup = int_option(argc, argv, "--warmup", 200);
  bool verbose = int_option(argc, argv, "--verbose", 0) != 0;
  int slices = int_option(argc, argv, "--slices", 6);
  int slice_warmup = int_option(argc, argv, "--slice-warmup", 10);
  bool diagnostics = int_option(argc, argv, "--diagnostics", 1) != 0;
  if (scheduler != "recommended" && scheduler != "default") {
    fmt::print(stderr, "--scheduler must be recommended or default\n");
    return 2;
  }
  snakepit::set_log_level(snakepit::log_level::warning);

  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  if (scheduler == "recommended")
    snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};
  auto policy = caf::to_string(caf::get_or(cfg, "scheduler.policy", caf::atom("stealing")));
  auto threads = sys.scheduler().num_workers();
  std::string sched_label = fmt::format("{} ({}, {} threads)", scheduler, policy, threads);

  // Touch every scheduler thread once so /proc samples can be labelled.
  {
    std::vector<std::future<void>> fs;
    for (int i = 0; i < 64; ++i) {
      auto p = std::make_shared<std::promise<void>>();
      fs.push_back(p->get_future());
      sys.spawn([p] {
        thread_roles::get().mark("caf-sched");
        std::this_thread::sleep_for(std::chrono::milliseconds{2});
        p->set_value();
      });
    }
    for (auto& f : fs)
      f.wait();
  }

  snakepit::pool_config pc;
  pc.name = "lat";
  pc.adapter = "snakepit_bridge.showcase.ShowcaseAdapter";
  pc.size = 1;
  pc.python = python_from_env();
  auto started = snakepit::start_pool(sys, pc);
  if (!started) {
    fmt::print(stderr, "pool failed to start: {}\n", snakepit::describe(started.error()).message);
    return 1;
  }
  auto pool = *started;
  auto sockets = list_worker_sockets(snakepit::runtime_dir());
  if (sockets.size() != 1) {
    fmt::print(stderr, "expected one worker socket in {}, found {}\n", snakepit::runtime_dir(),
               sockets.size());
    return 1;
  }
  int worker_pid = 0;
  {
    caf::scoped_actor self{sys};
    self->request(pool, caf::infinite, snakepit::status_atom::value)
      .receive([&](snakepit::pool_status& st) { worker_pid = st.workers.at(0).pid; },
               [&](caf::error&) {});
  }

  // The minimal grpc.aio servers (decomposition of the Python side).
  auto python = python_from_env();
  auto here = std::string{SNAKEPIT_BENCH_DIR};
  // One server per mode of bench/min_aio_server.py (only with --diagnostics).
  struct min_server {
    std::string mode;
    child_process proc;
    std::unique_ptr<snakepit::bridge::v1::Worker::Stub> stub;
  };
  std::vector<std::unique_ptr<min_server>> mins;
  if (diagnostics) {
    auto env = worker_env(snakepit::python_package_dir());
    for (auto* mode : {"inline", "executor", "executor-encode", "dispatcher", "sync-server"}) {
      auto m = std::make_unique<min_server>();
      m->mode = mode;
      auto sock = snakepit::runtime_dir() + "/min-" + mode + ".sock";
      m->proc.start({python, here + "/min_aio_server.py", "--socket", sock, "--mode", mode,
                     "--ready-fd", "3", "--lifeline-fd", "4"},
                    env);
      if (m->proc.wait_ready_line().empty()) {
        fmt::print(stderr, "bench/min_aio_server.py --mode {} did not start\n", mode);
        return 1;
      }
      m->stub = snakepit::bridge::v1::Worker::NewStub(make_channel(sock));
      mins.push_back(std::move(m));
    }
  }

  // Floors: stubs on their own channels to the same worker socket.
  auto raw_channel = make_channel(sockets[0]);
  auto raw_stub = snakepit::bridge::v1::Worker::NewStub(raw_channel);
  auto proxy = sys.spawn(proxy_actor, sockets[0], false, false);
  auto proxy_timer = sys.spawn(proxy_actor, sockets[0], true, false);
  auto proxy_deadline = sys.spawn(proxy_actor, sockets[0], false, true);
  auto proxy_both = sys.spawn(proxy_actor, sockets[0], true, true);

  // What the demo does: a pool of 2 workers (calls alternate between them) and
  // one scoped_actor calling it in a loop.
  std::optional<pool_actor> pool2;
  if (diagnostics) {
    auto p2 = start_showcase_pool(sys, "lat2", 2);
    if (!p2) {
      fmt::print(stderr, "pool of 2 failed to start\n");
      return 1;
    }
    pool2 = *p2;
  }

  const std::string kib(1024, 'x');
  const std::string none;
  auto wire_noop = make_wire_request("noop");
  auto wire_echo = make_wire_request("echo", &kib);
  auto wire_noop_timeout = make_wire_request("noop");
  wire_noop_timeout.set_timeout_ms(60000);
  auto wire_async = make_wire_request("async_sleep", "seconds", 0.0);

  auto send_pool = [pool](std::string tool, std::string payload) {
    return [pool, tool, payload](caf::event_based_actor* self, auto k) {
      self->request(pool, caf::infinite, execute_atom::value, pool_request(tool, payload))
        .then([k](execute_reply&) mutable { k(true); }, [k](caf::error&) mutable { k(false); });
    };
  };
  auto send_proxy = [](caf::actor target, std::string tool, std::string payload) {
    return [target, tool, payload](caf::event_based_actor* self, auto k) {
      self->request(target, caf::infinite, fcall_atom::value, tool, payload)
        .then([k](std::string&) mutable { k(true); }, [k](caf::error&) mutable { k(false); });
    };
  };
  auto scoped_pool = [&sys, pool](std::string tool, std::string payload) {
    return [&sys, pool, tool, payload](int n) {
      caf::scoped_actor self{sys};
      run_result out;
      out.lat_us.reserve(static_cast<size_t>(n));
      auto start = clk::now();
      for (int i = 0; i < n; ++i) {
        auto t0 = clk::now();
        self->request(pool, caf::infinite, execute_atom::value, pool_request(tool, payload))
          .receive([](execute_reply&) {}, [&](caf::error&) { ++out.failures; });
        out.lat_us.push_back(us_between(t0, clk::now()));
      }
      out.wall_s = ms_between(start, clk::now()) / 1000.0;
      out.calls = out.lat_us.size();
      return out;
    };
  };
  auto scoped_proxy = [&sys, proxy](int n) {
    caf::scoped_actor self{sys};
    run_result out;
    out.lat_us.reserve(static_cast<size_t>(n));
    auto start = clk::now();
    for (int i = 0; i < n; ++i) {
      auto t0 = clk::now();
      self->request(proxy, caf::infinite, fcall_atom::value, std::string{"noop"}, std::string{})
        .receive([](std::string&) {}, [&](caf::error&) { ++out.failures; });
      out.lat_us.push_back(us_between(t0, clk::now()));
    }
    out.wall_s = ms_between(start, clk::now()) / 1000.0;
    out.calls = out.lat_us.size();
    return out;
  };

  std::vector<variant> vs;
  // --only a,b,c keeps just those variants (for profiling one path with perf).
  auto only = "," + string_option(argc, argv, "--only", "") + ",";
  auto add = [&](std::string name, int pid, std::function<run_result(int)> fn) {
    if (only != ",," && only.find("," + name + ",") == std::string::npos)
      return;
    variant v;
    v.name = std::move(name);
    v.target_pid = pid;
    v.run = std::move(fn);
    vs.push_back(std::move(v));
  };
  auto* rs = raw_stub.get();
  add("raw", worker_pid, [rs, &wire_noop](int n) { return raw_run({rs}, wire_noop, n); });
  add("actor", worker_pid, [&sys, proxy, &send_proxy](int n) {
    return event_caller_run(sys, send_proxy(proxy, "noop", ""), n);
  });
  add("pool", worker_pid,
      [&sys, &send_pool](int n) { return event_caller_run(sys, send_pool("noop", ""), n); });
  add("pool-scoped", worker_pid, scoped_pool("noop", ""));
  if (diagnostics) {
    add("actor-scoped", worker_pid, scoped_proxy);
    add("actor+timer", worker_pid, [&sys, proxy_timer, &send_proxy](int n) {
      return event_caller_run(sys, send_proxy(proxy_timer, "noop", ""), n);
    });
    add("actor+deadline", worker_pid, [&sys, proxy_deadline, &send_proxy](int n) {
      return event_caller_run(sys, send_proxy(proxy_deadline, "noop", ""), n);
    });
    add("actor+both", worker_pid, [&sys, proxy_both, &send_proxy](int n) {
      return event_caller_run(sys, send_proxy(proxy_both, "noop", ""), n);
    });
    add("raw-sync", worker_pid,
        [rs, &wire_noop](int n) { return raw_sync_run(rs, wire_noop, n); });
    add("raw+deadline", worker_pid, [rs, &wire_noop_timeout](int n) {
      return raw_run({rs}, wire_noop_timeout, n, true);
    });
    add("pool2-scoped", pool_status_of(sys, *pool2).workers.at(0).pid,
        [&sys, &pool2](int n) {
          caf::scoped_actor self{sys};
          run_result out;
          auto start = clk::now();
          for (int i = 0; i < n; ++i) {
            auto t0 = clk::now();
            self->request(*pool2, caf::infinite, execute_atom::value,
                          snakepit::make_request("noop"))
              .receive([](execute_reply&) {}, [&](caf::error&) { ++out.failures; });
            out.lat_us.push_back(us_between(t0, clk::now()));
          }
          out.wall_s = ms_between(start, clk::now()) / 1000.0;
          out.calls = out.lat_us.size();
          return out;
        });
  }
  add("raw-echo1k", worker_pid, [rs, &wire_echo](int n) { return raw_run({rs}, wire_echo, n); });
  add("actor-echo1k", worker_pid, [&sys, proxy, &send_proxy, &kib](int n) {
    return event_caller_run(sys, send_proxy(proxy, "echo", kib), n);
  });
  add("pool-echo1k", worker_pid, [&sys, &send_pool, &kib](int n) {
    return event_caller_run(sys, send_pool("echo", kib), n);
  });
  add("thread-pingpong", ::getpid(), pingpong_run);
  if (diagnostics) {
    add("raw-async", worker_pid,
        [rs, &wire_async](int n) { return raw_run({rs}, wire_async, n); });
    for (auto& m : mins) {
      auto* stub = m->stub.get();
      auto name = std::string{"raw-min-"}
                  + (m->mode == "inline"            ? "aio"
                     : m->mode == "executor"        ? "exec"
                     : m->mode == "executor-encode" ? "encode"
                     : m->mode == "dispatcher"      ? "disp"
                                                    : "sync");
      add(name, m->proc.pid(), [stub, &wire_noop](int n) { return raw_run({stub}, wire_noop, n); });
    }
  }

  fmt::print("latency_bench: scheduler {}, {} rounds x {} calls (+{} warm-up) per variant, "
             "worker pid {}\n",
             sched_label, rounds, calls, warmup, worker_pid);
  auto t_all = clk::now();
  // The machine's speed drifts between levels for seconds at a time (the same
  // call takes 200 or 400 us): every round therefore interleaves the variants
  // in short slices, so each variant of a round sees the same mix of levels.
  for (auto& v : vs)
    v.run(warmup);
  int per_slice = std::max(1, calls / slices);
  for (int r = 0; r < rounds; ++r) {
    std::vector<run_result> acc(vs.size());
    std::vector<proc_usage> host(vs.size());
    std::vector<long> worker_vol(vs.size(), 0);
    for (int s = 0; s < slices; ++s) {
      for (size_t k = 0; k < vs.size(); ++k) {
        auto& v = vs[k];
        v.run(slice_warmup);  // the first calls after a switch of variant are cold
        auto host0 = proc_usage::now();
        auto ht0 = sample_threads(::getpid());
        auto wt0 = sample_threads(v.target_pid);
        auto res = v.run(per_slice);
        auto wt1 = sample_threads(v.target_pid);
        auto ht1 = sample_threads(::getpid());
        auto used = proc_usage::now() - host0;
        host[k].cpu_s += used.cpu_s;
        host[k].vol_switches += used.vol_switches;
        for (auto& [tid, a] : wt1)
          worker_vol[k] += a.vol - (wt0.count(tid) ? wt0.at(tid).vol : 0);
        accumulate_threads(v.host_threads, ht0, ht1);
        accumulate_threads(v.worker_threads, wt0, wt1);
        acc[k].lat_us.insert(acc[k].lat_us.end(), res.lat_us.begin(), res.lat_us.end());
        acc[k].wall_s += res.wall_s;
        acc[k].calls += res.calls;
        acc[k].failures += res.failures;
      }
    }
    for (size_t k = 0; k < vs.size(); ++k) {
      auto& v = vs[k];
      auto n = static_cast<double>(acc[k].calls);
      v.p50.push_back(percentile(acc[k].lat_us, 50));
      v.p99.push_back(percentile(acc[k].lat_us, 99));
      double sum = 0;
      for (auto x : acc[k].lat_us)
        sum += x;
      v.mean.push_back(sum / n);
      v.rate.push_back(acc[k].calls_per_s());
      v.cpu_us.push_back(host[k].cpu_s * 1e6 / n);
      v.host_vcs.push_back(static_cast<double>(host[k].vol_switches) / n);
      v.worker_vcs.push_back(static_cast<double>(worker_vol[k]) / n);
      v.calls += static_cast<long>(acc[k].calls);
      v.failures += acc[k].failures;
    }
  }
  auto total_s = ms_between(t_all, clk::now()) / 1000.0;
  if (verbose) {
    fmt::print("\nPer round p50 us (in run order)\n");
    for (auto& v : vs) {
      std::string line;
      for (auto x : v.p50)
        line += fmt::format(" {:6.0f}", x);
      fmt::print("  {:<14}{}\n", v.name, line);
    }
  }

  // Variants left out (--diagnostics 0) read as NaN and print as "-".
  variant missing;
  auto find = [&](const std::string& name) -> const variant& {
    for (auto& v : vs)
      if (v.name == name)
        return v;
    return missing;
  };
  auto p50_of = [&](const std::string& name) { return median(find(name).p50); };
  auto p99_of = [&](const std::string& name) { return median(find(name).p99); };

  fmt::print("\nPer variant: medians over {} rounds of each round's value\n", rounds);
  table t({"variant", "p50 us", "p99 us", "mean us", "host CPU us/call",
           "host vol.sw/call", "worker vol.sw/call", "failed"});
  for (auto& v : vs)
    t.add({v.name, fixed(v.m(v.p50)), fixed(v.m(v.p99)), fixed(v.m(v.mean)),
           fixed(v.m(v.cpu_us), 1), fixed(v.m(v.host_vcs), 2), fixed(v.m(v.worker_vcs), 2),
           std::to_string(v.failures)});
  t.print();

  auto ratio = [&](const std::string& a, const std::string& b, bool p99) {
    return p99 ? p99_of(a) / p99_of(b) : p50_of(a) / p50_of(b);
  };
  fmt::print("\nRatios of medians (scheduler {})\n", sched_label);
  table rt({"ratio", "p50", "p99", "target", "verdict"});
  auto pool_actor_p50 = ratio("pool", "actor", false);
  auto echo_ratio = ratio("pool-echo1k", "actor-echo1k", false);
  auto row = [&](const std::string& label, const std::string& a, const std::string& b,
                 const std::string& target, double limit) {
    auto x = ratio(a, b, false);
    rt.add({label, fixed(x, 2), fixed(ratio(a, b, true), 2), target,
            limit > 0 ? verdict(x <= limit) : ""});
  };
  row("pool / one actor (noop)", "pool", "actor", "p50 <= 1.2", 1.2);
  row("pool / raw gRPC (noop)", "pool", "raw", "report", 0);
  row("one actor / raw gRPC (noop)", "actor", "raw", "report", 0);
  row("pool / one actor (echo 1 KiB)", "pool-echo1k", "actor-echo1k", "p50 <= 1.2", 1.2);
  row("pool / raw gRPC (echo 1 KiB)", "pool-echo1k", "raw-echo1k", "report", 0);
  row("pool, scoped_actor / event-based caller", "pool-scoped", "pool", "report", 0);
  row("actor, scoped_actor / event-based caller", "actor-scoped", "actor", "report", 0);
  row("actor+timer / actor", "actor+timer", "actor", "report", 0);
  row("actor+deadline / actor", "actor+deadline", "actor", "report", 0);
  row("pool / actor+both (the actors alone)", "pool", "actor+both", "report", 0);
  row("raw blocking stub / raw callback", "raw-sync", "raw", "report", 0);
  row("raw with deadline / raw", "raw+deadline", "raw", "report", 0);
  row("demo-like (pool of 2, scoped_actor) / pool", "pool2-scoped", "pool", "report", 0);
  rt.print();

  auto d = [&](const std::string& a, const std::string& b) { return p50_of(a) - p50_of(b); };
  fmt::print("\nWhere the time of one no-op call goes (differences of median p50s, us)\n");
  table dt({"step", "us"});
  dt.add({"one thread wake-up, at the same time (thread-pingpong / 2)",
          fixed(p50_of("thread-pingpong") / 2, 1)});
  dt.add({"grpc.aio server, empty handler (raw-min-aio)", fixed(p50_of("raw-min-aio"))});
  dt.add({"+ one run_in_executor hop (raw-min-exec - raw-min-aio)",
          fixed(d("raw-min-exec", "raw-min-aio"))});
  dt.add({"+ encoding the result in the pool thread (raw-min-encode - raw-min-exec)",
          fixed(d("raw-min-encode", "raw-min-exec"))});
  dt.add({"+ the rest of snakepit's Dispatcher (raw-min-disp - raw-min-encode)",
          fixed(d("raw-min-disp", "raw-min-encode"))});
  dt.add({"+ snakepit's server.py around it (raw - raw-min-disp)",
          fixed(d("raw", "raw-min-disp"))});
  dt.add({"sync grpc.server doing the same work, instead (raw-min-sync - raw-min-encode)",
          fixed(d("raw-min-sync", "raw-min-encode"))});
  dt.add({"snakepit worker, async tool (raw-async - raw-min-aio)",
          fixed(d("raw-async", "raw-min-aio"))});
  dt.add({"snakepit worker, sync tool noop (raw - raw-min-aio)", fixed(d("raw", "raw-min-aio"))});
  dt.add({"a gRPC deadline on the call (raw+deadline - raw)", fixed(d("raw+deadline", "raw"))});
  dt.add({"one CAF actor in front (actor - raw)", fixed(d("actor", "raw"))});
  dt.add({"pool + worker actor instead of one actor (pool - actor)", fixed(d("pool", "actor"))});
  dt.add({"  of which a timer per call (actor+timer - actor)", fixed(d("actor+timer", "actor"))});
  dt.add({"  of which a gRPC deadline per call (actor+deadline - actor)",
          fixed(d("actor+deadline", "actor"))});
  dt.add({"  of which both (actor+both - actor)", fixed(d("actor+both", "actor"))});
  dt.add({"  the pool and worker actors themselves (pool - actor+both)",
          fixed(d("pool", "actor+both"))});
  dt.add({"scoped_actor caller instead of event-based (pool-scoped - pool)",
          fixed(d("pool-scoped", "pool"))});
  dt.add({"2 workers taking turns instead of 1 (pool2-scoped - pool-scoped)",
          fixed(d("pool2-scoped", "pool-scoped"))});
  dt.print();

  fmt::print("\nVoluntary context switches per call by thread, all rounds (host threads "
             "labelled by what ran on them;\nworker threads: the event loop, then others "
             "by tid order)\n");
  for (auto* name : {"raw", "raw-sync", "raw+deadline", "actor", "actor+timer", "actor+both",
                     "actor-scoped", "pool",
                     "pool-scoped", "pool2-scoped", "raw-async", "raw-min-aio",
                     "raw-min-exec", "raw-min-disp", "raw-min-sync"}) {
    auto& v = find(name);
    if (v.calls == 0)
      continue;
    auto n = static_cast<double>(v.calls);
    std::map<std::string, double> host, worker;
    for (auto& [tid, info] : v.host_threads)
      host[thread_roles::get().label(tid, info.comm)] += static_cast<double>(info.vol) / n;
    int k = 0;
    for (auto& [tid, info] : v.worker_threads) {
      auto label = tid == v.target_pid ? std::string{"loop"}
                                       : fmt::format("{}#{}", info.comm, ++k);
      worker[label] += static_cast<double>(info.vol) / n;
    }
    auto render = [](const std::map<std::string, double>& m) {
      std::string out;
      double total = 0;
      for (auto& [label, x] : m)
        if (x >= 0.05) {
          out += fmt::format(" {}={:.2f}", label, x);
          total += x;
        }
      return fmt::format("{:.2f}:{}", total, out);
    };
    fmt::print("  {:<13} host   {}\n  {:<13} worker {}\n", name, render(host), "",
               render(worker));
  }

  auto tag = std::string{"latency."} + scheduler;
  for (auto* name : {"raw", "actor", "pool", "pool-scoped", "raw-echo1k", "actor-echo1k",
                     "pool-echo1k"}) {
    auto& v = find(name);
    result_line(tag, std::string{name} + "_p50_us", median(v.p50));
    result_line(tag, std::string{name} + "_p99_us", median(v.p99));
    result_line(tag, std::string{name} + "_mean_us", median(v.mean));
    result_line(tag, std::string{name} + "_host_cpu_us", median(v.cpu_us));
    result_line(tag, std::string{name} + "_host_vcs", median(v.host_vcs));
    result_line(tag, std::string{name} + "_worker_vcs", median(v.worker_vcs));
  }
  result_line(tag, "wakeup_us", p50_of("thread-pingpong") / 2);
  result_line(tag, "pool_over_actor_p50", pool_actor_p50);
  result_line(tag, "pool_over_actor_p99", ratio("pool", "actor", true));
  result_line(tag, "pool_over_raw_p50", ratio("pool", "raw", false));
  result_line(tag, "pool_over_raw_p99", ratio("pool", "raw", true));
  result_line(tag, "actor_over_raw_p50", ratio("actor", "raw", false));
  result_line(tag, "echo_pool_over_actor_p50", echo_ratio);
  result_line(tag, "echo_pool_over_actor_p99", ratio("pool-echo1k", "actor-echo1k", true));
  result_line(tag, "echo_pool_over_raw_p50", ratio("pool-echo1k", "raw-echo1k", false));
  result_line(tag, "scoped_over_event_p50", ratio("pool-scoped", "pool", false));
  fmt::print("\n(measured in {:.1f} s)\n", total_s);

  if (pool2)
    stop_pool_within(sys, *pool2);
  caf::anon_send_exit(proxy, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(proxy_timer, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(proxy_deadline, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(proxy_both, caf::exit_reason::user_shutdown);
  stop_pool_within(sys, pool);
  return finish(0);
}
