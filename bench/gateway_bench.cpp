// gateway_bench: calls through the gateway (a unix socket, as `snakepit run`
// serves it) against in-process CAF callers on the same pool, in the same run,
// interleaved; then what idle connected clients cost the serving process.
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 gateway_bench [--rounds 5] [--seq-calls 1500]
//        [--calls 6000] [--idle 1000] [--only VARIANT]   (--only: profiling, no ratios)
//
// Variants (one pool of 2 process workers, the default batched transport):
//   inproc-1    one event-based caller, one no-op call at a time
//   client-1    snakepit::client (one multiplexed Calls stream), one call at a time
//   unary-1     a raw gRPC stub of the unary Call RPC, one call at a time
//   floor-1     snakepit::client calling a pool the tree does not have: the
//               gateway answers from its gRPC thread (no CAF, no pool, no
//               Python), so this is the client/gRPC round trip alone
//   inproc-16   16 event-based callers, one call in flight each
//   async-16    16 asynchronous callers (call_async) on one snakepit::client
//   client-16   16 threads calling through one snakepit::client
//   clients-16  16 snakepit::client objects, one thread each
//   unary-16    16 raw gRPC stubs of the unary Call, each its own connection and thread
// Then --idle clients (bench/idle_gateway_clients.py, another process) connect
// and make one call each; the serving process's RSS and open fds before and
// after, per client.

#include <dirent.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include "bench_actors.hpp"
#include "bench_common.hpp"
#include "gateway.grpc.pb.h"
#include "snakepit/client/client.hpp"
#include "snakepit/gateway/gateway_server.hpp"
#include "snakepit/snakepit.hpp"

extern char** environ;

namespace {

using namespace bench;
namespace gw = snakepit::gateway::v1;

double rss_mib() {
  std::ifstream in{"/proc/self/statm"};
  long size = 0, resident = 0;
  in >> size >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE))
         / (1024.0 * 1024.0);
}

int open_fds() {
  int n = 0;
  if (auto* d = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(d))
      n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

/// `clients` threads, each with a channel of its own, `calls_each` sync calls.
run_result gateway_run(const std::string& address, int clients, int calls_each) {
  std::vector<std::unique_ptr<gw::Gateway::Stub>> stubs;
  for (int i = 0; i < clients; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("snakepit.bench.client", i);  // one connection each
    stubs.push_back(gw::Gateway::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
  }
  gw::CallRequest req;
  req.set_pool("bench");
  req.set_tool("noop");
  std::vector<run_result> parts(static_cast<std::size_t>(clients));
  std::vector<std::thread> threads;
  auto t0 = clk::now();
  for (int i = 0; i < clients; ++i)
    threads.emplace_back([&, i] {
      auto& part = parts[static_cast<std::size_t>(i)];
      for (int k = 0; k < calls_each; ++k) {
        grpc::ClientContext ctx;
        gw::CallReply reply;
        auto c0 = clk::now();
        auto status = stubs[static_cast<std::size_t>(i)]->Call(&ctx, req, &reply);
        part.lat_us.push_back(us_between(c0, clk::now()));
        if (!status.ok() || reply.has_failure())
          ++part.failures;
      }
    });
  for (auto& t : threads)
    t.join();
  return merge_runs(parts, ms_between(t0, clk::now()) / 1000.0);
}

/// `threads` threads calling through `clients` snakepit::client objects
/// (thread i uses client i % clients), `calls_each` calls per thread.
run_result client_run(const std::string& address, int clients, int threads, int calls_each,
                      const std::string& pool_name = "bench") {
  std::vector<snakepit::client> pool_clients;
  for (int i = 0; i < clients; ++i)
    pool_clients.push_back(*snakepit::client::connect(address));
  // Connected and warm before the clock starts.
  for (auto& c : pool_clients)
    (void) c.call("bench", "noop");
  std::vector<run_result> parts(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  auto t0 = clk::now();
  for (int i = 0; i < threads; ++i)
    workers.emplace_back([&, i] {
      auto& part = parts[static_cast<std::size_t>(i)];
      auto& c = pool_clients[static_cast<std::size_t>(i % clients)];
      for (int k = 0; k < calls_each; ++k) {
        auto c0 = clk::now();
        auto got = c.call(pool_name, "noop");
        part.lat_us.push_back(us_between(c0, clk::now()));
        // The floor's calls fail by design (an unknown pool), and only so.
        if (got.has_value() == (pool_name != "bench")
            || (!got && got.error().code != snakepit::errc::bad_arguments))
          ++part.failures;
      }
    });
  for (auto& t : workers)
    t.join();
  return merge_runs(parts, ms_between(t0, clk::now()) / 1000.0);
}

/// `callers` asynchronous callers through one snakepit::client, one call in
/// flight each: every answer's callback sends that caller's next call (as
/// the in-process event-based callers do).
run_result client_async_run(const std::string& address, int callers, int calls_each) {
  auto c = *snakepit::client::connect(address);
  (void) c.call("bench", "noop");
  struct caller {
    run_result part;
    int left = 0;
    clk::time_point sent;
  };
  std::vector<caller> state(static_cast<std::size_t>(callers));
  std::mutex mtx;
  std::condition_variable all_done;
  int running = callers;
  std::function<void(std::size_t)> next = [&](std::size_t i) {
    auto& me = state[i];
    me.sent = clk::now();
    c.call_async("bench", "noop", {}, {}, [&, i](snakepit::result<snakepit::value> got) {
      auto& self = state[i];
      self.part.lat_us.push_back(us_between(self.sent, clk::now()));
      if (!got)
        ++self.part.failures;
      if (--self.left > 0) {
        next(i);
        return;
      }
      std::lock_guard<std::mutex> guard{mtx};
      if (--running == 0)
        all_done.notify_all();
    });
  };
  auto t0 = clk::now();
  for (std::size_t i = 0; i < state.size(); ++i) {
    state[i].left = calls_each;
    next(i);
  }
  std::unique_lock<std::mutex> guard{mtx};
  all_done.wait(guard, [&] { return running == 0; });
  auto seconds = ms_between(t0, clk::now()) / 1000.0;
  std::vector<run_result> parts;
  for (auto& s : state)
    parts.push_back(std::move(s.part));
  return merge_runs(parts, seconds);
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int rounds = int_option(argc, argv, "--rounds", 5);
  int seq_calls = int_option(argc, argv, "--seq-calls", 1500);
  int calls = int_option(argc, argv, "--calls", 6000);
  int idle = int_option(argc, argv, "--idle", 1000);
  auto only = string_option(argc, argv, "--only", "");
  auto python = python_from_env();
  snakepit::set_log_level(snakepit::log_level::warning);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};
  auto pool = start_showcase_pool(sys, "bench", 2, [](snakepit::pool_config& pc) {
    pc.queue_timeout = std::chrono::seconds{120};
  });
  if (!pool) {
    fmt::print(stderr, "the pool failed to start\n");
    return 1;
  }
  snakepit::gateway_options opts;
  opts.listen = "unix:" + snakepit::runtime_dir() + "/gateway-bench.sock";
  opts.max_calls = 1u << 20;
  opts.max_calls_per_client = 1u << 20;
  snakepit::gateway_backend backend;
  backend.tree = "bench";
  backend.pool_names = {"bench"};
  backend.pool = [p = *pool](const std::string&) -> caf::expected<snakepit::pool_actor> {
    return p;
  };
  backend.status = [] { return snakepit::tree_status{}; };
  auto server = snakepit::gateway_server::start(sys, opts, backend);
  if (!server) {
    fmt::print(stderr, "the gateway failed to start: {}\n",
               snakepit::describe(server.error()).message);
    return 1;
  }
  auto address = (*server)->address();
  auto noop = [] { return snakepit::make_request("noop"); };
  const int clients = 16;
  std::vector<std::string> names{"inproc-1",  "client-1",   "unary-1",  "inproc-16",
                                 "async-16",  "client-16", "clients-16", "unary-16",
                                 "floor-1"};
  std::vector<round_samples> samples(names.size());
  auto round = [&](int scale, bool keep) {
    auto each = calls / scale / clients;
    std::vector<std::function<run_result()>> variants{
      [&] { return event_callers_run(sys, pool_sender(*pool, noop), 1, seq_calls / scale); },
      [&] { return client_run(address, 1, 1, seq_calls / scale); },
      [&] { return gateway_run(address, 1, seq_calls / scale); },
      [&] { return event_callers_run(sys, pool_sender(*pool, noop), clients, each); },
      [&] { return client_async_run(address, clients, each); },
      [&] { return client_run(address, 1, clients, each); },
      [&] { return client_run(address, clients, clients, each); },
      [&] { return gateway_run(address, clients, each); },
      [&] { return client_run(address, 1, 1, seq_calls / scale, "no-such-pool"); },
    };
    for (std::size_t k = 0; k < names.size(); ++k) {
      if (!only.empty() && names[k] != only)
        continue;
      auto got = variants[k]();
      if (keep)
        samples[k].add(got);
    }
  };
  fmt::print("gateway_bench: 2 workers, {} rounds; {} calls one at a time, {} with {} callers "
             "per round; gateway at {}\n",
             rounds, seq_calls, calls, clients, address);
  round(10, false);
  for (int r = 0; r < rounds; ++r)
    round(1, true);
  print_variants(names, samples);
  if (!only.empty()) {
    server->reset();
    stop_pool_within(sys, *pool, std::chrono::seconds{20});
    return finish(0);
  }

  // Idle clients, from another process.
  double rss0 = rss_mib();
  int fds0 = open_fds();
  auto ready = snakepit::runtime_dir() + "/idle-clients.ready";
  std::string script = std::string{SNAKEPIT_BENCH_DIR} + "/idle_gateway_clients.py";
  auto count = std::to_string(idle);
  std::vector<char*> child_argv{const_cast<char*>(python.c_str()),
                                const_cast<char*>(script.c_str()),
                                const_cast<char*>(address.c_str()),
                                const_cast<char*>(count.c_str()),
                                const_cast<char*>(ready.c_str()), nullptr};
  auto pythonpath = "PYTHONPATH=" + snakepit::python_package_dir();
  std::vector<char*> child_env;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::string_view{*e}.substr(0, 11) != "PYTHONPATH=")
      child_env.push_back(*e);
  child_env.push_back(const_cast<char*>(pythonpath.c_str()));
  child_env.push_back(nullptr);
  pid_t child = 0;
  int connected = 0, refused = idle;
  if (::posix_spawn(&child, python.c_str(), nullptr, nullptr, child_argv.data(),
                    child_env.data())
      == 0) {
    for (int i = 0; i < 1200 && ::access(ready.c_str(), F_OK) != 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    std::ifstream in{ready};
    in >> connected >> refused;
  }
  std::this_thread::sleep_for(std::chrono::seconds{1});
  double rss1 = rss_mib();
  int fds1 = open_fds();
  // Still serving with them connected.
  auto after = gateway_run(address, 1, 200);
  if (child > 0) {
    ::kill(child, SIGTERM);
    ::waitpid(child, nullptr, 0);
  }
  ::unlink(ready.c_str());
  fmt::print("\n{} idle clients connected ({} failed): serving process RSS {:.1f} -> {:.1f} MiB "
             "({:.1f} KiB per client), fds {} -> {} ({:.2f} per client); a call with them "
             "connected: p50 {:.0f} us, {} failures\n",
             connected, refused, rss0, rss1, (rss1 - rss0) * 1024 / std::max(1, connected), fds0,
             fds1, static_cast<double>(fds1 - fds0) / std::max(1, connected),
             percentile(after.lat_us, 50), after.failures);

  auto p50 = [&](std::size_t k) { return median(samples[k].p50); };
  auto rate = [&](std::size_t k) { return median(samples[k].rate); };
  double latency_ratio = p50(1) / p50(0);
  double throughput_ratio = rate(4) / rate(3);
  double threads_ratio = rate(5) / rate(3);
  double separate_ratio = rate(6) / rate(3);
  double unary_latency_ratio = p50(2) / p50(0);
  // The best a gateway on this transport could do: its round trip alone added.
  double floor_ratio = (p50(8) + p50(0)) / p50(0);
  double unary_throughput_ratio = rate(7) / rate(3);
  fmt::print("\nRatios of medians\n");
  table rt({"ratio", "value", "target", "verdict"});
  rt.add({"client-1 p50 / inproc-1 p50", fixed(latency_ratio, 2), "<= 1.5",
          verdict(latency_ratio <= 1.5)});
  rt.add({"async-16 calls/s / inproc-16 calls/s", fixed(throughput_ratio, 2), ">= 0.8",
          verdict(throughput_ratio >= 0.8)});
  rt.add({"client-16 calls/s / inproc-16 calls/s", fixed(threads_ratio, 2), "report", "-"});
  rt.add({"clients-16 calls/s / inproc-16 calls/s", fixed(separate_ratio, 2), "report", "-"});
  rt.add({"unary-1 p50 / inproc-1 p50", fixed(unary_latency_ratio, 2), "report", "-"});
  rt.add({"(floor-1 p50 + inproc-1 p50) / inproc-1 p50", fixed(floor_ratio, 2), "report", "-"});
  rt.add({"unary-16 calls/s / inproc-16 calls/s", fixed(unary_throughput_ratio, 2), "report",
          "-"});
  rt.add({"idle clients held without failures", std::to_string(connected), fmt::format("{}", idle),
          verdict(connected == idle && refused == 0 && after.failures == 0)});
  rt.print();
  result_line("gateway", "p50_ratio", latency_ratio);
  result_line("gateway", "throughput_ratio", throughput_ratio);
  result_line("gateway", "threads_throughput_ratio", threads_ratio);
  result_line("gateway", "separate_clients_throughput_ratio", separate_ratio);
  result_line("gateway", "unary_p50_ratio", unary_latency_ratio);
  result_line("gateway", "floor_p50_us", p50(8));
  result_line("gateway", "floor_p50_ratio", floor_ratio);
  result_line("gateway", "unary_throughput_ratio", unary_throughput_ratio);
  result_line("gateway", "idle_kib_per_client", (rss1 - rss0) * 1024 / std::max(1, connected));
  result_line("gateway", "idle_fds_per_client",
              static_cast<double>(fds1 - fds0) / std::max(1, connected));
  server->reset();
  stop_pool_within(sys, *pool, std::chrono::seconds{20});
  return finish(0);
}
