// cluster_bench: a cluster pool over two nodes (real `snakepit run` processes
// with [node], one worker each, on loopback) against one node with the same
// two workers, in the same run, interleaved, on CPU-bound 5 ms calls; then a
// node of the cluster killed (SIGKILL) and frozen (SIGSTOP) under load: how
// long until its callers have their answer, and whether the queued calls ran
// on the survivor.
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 cluster_bench [--rounds 5] [--calls 800]
//
// Variants (16 event-based callers, one `cpu_burn(5)` in flight each):
//   one-node   the pool of one node with 2 workers (connect_pool)
//   cluster    a cluster pool over two nodes with 1 worker each
// This machine has 2 cores: the ratio measures the cluster's overhead, not scale.

#include <signal.h>
#include <sys/wait.h>

#include <mutex>
#include <thread>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "bench_actors.hpp"
#include "bench_common.hpp"
#include "bench_nodes.hpp"
#include "snakepit/snakepit.hpp"

using namespace bench;
using namespace std::chrono_literals;

namespace {

struct outcome {
  clk::time_point at;
  bool ok = false;
  bool node_down = false;
};

/// `n` callers, one `sleep(seconds)` each, sent at once from their own
/// threads; `meanwhile` runs after `after`; each outcome with its time.
std::vector<outcome> sleepers(caf::actor_system& sys, const snakepit::pool_actor& pool, int n,
                              double seconds, clk::duration after,
                              const std::function<void()>& meanwhile) {
  std::vector<outcome> out(static_cast<std::size_t>(n));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      caf::scoped_actor self{sys};
      self->request(pool, 60s, snakepit::execute_atom::value,
                    snakepit::make_request("sleep", {{"seconds", seconds}}))
        .receive([&](snakepit::execute_reply&) { out[i] = {clk::now(), true, false}; },
                 [&](caf::error& e) {
                   out[i] = {clk::now(), false, snakepit::is(e, snakepit::errc::node_down)};
                 });
    });
  std::this_thread::sleep_for(after);
  meanwhile();
  for (auto& t : threads)
    t.join();
  return out;
}

bool member_connected(caf::actor_system& sys, const snakepit::pool_actor& cluster,
                      const std::string& name) {
  caf::scoped_actor self{sys};
  bool connected = false;
  self->request(cluster, 10s, snakepit::status_atom::value)
    .receive(
      [&](snakepit::pool_status& st) {
        for (auto& m : st.members)
          if (m.name == name)
            connected = m.connected;
      },
      [](caf::error&) {});
  return connected;
}

bool await_member(caf::actor_system& sys, const snakepit::pool_actor& cluster,
                  const std::string& name, bool connected) {
  for (int i = 0; i < 1000; ++i) {
    if (member_connected(sys, cluster, name) == connected)
      return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

struct failover {
  double affected_ms = 0;  // until every call that was running there is answered
  double drained_ms = 0;   // until every call is answered
  int node_down = 0;
  int ok = 0;
  int other = 0;
};

failover measure(const std::vector<outcome>& got, clk::time_point broke) {
  failover f;
  for (auto& o : got) {
    auto ms = ms_between(broke, o.at);
    f.drained_ms = std::max(f.drained_ms, ms);
    if (o.node_down) {
      ++f.node_down;
      f.affected_ms = std::max(f.affected_ms, ms);
    } else if (o.ok) {
      ++f.ok;
    } else {
      ++f.other;
    }
  }
  return f;
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int rounds = int_option(argc, argv, "--rounds", 5);
  int calls = int_option(argc, argv, "--calls", 800);
  python_from_env();
  snakepit::set_log_level(snakepit::log_level::warning);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  snakepit::use_distribution(cfg);
  caf::actor_system sys{cfg};
  auto dir = snakepit::runtime_dir();
  int solo_port = free_port();
  int a_port = free_port();
  int b_port = free_port();
  auto solo = start_node(dir, "solo", solo_port, 2);
  auto a = start_node(dir, "a", a_port, 1);
  auto b = start_node(dir, "b", b_port, 1);
  snakepit::remote_pool_options watch;
  watch.heartbeat_interval = 200ms;
  watch.heartbeat_timeout = 1000ms;
  auto one = connect_node(sys, solo_port);
  auto pool_a = connect_node(sys, a_port, watch);
  auto pool_b = connect_node(sys, b_port, watch);
  if (!one || !pool_a || !pool_b) {
    fmt::print(stderr, "a node did not start (logs in {})\n", dir);
    for (auto pid : {solo, a, b})
      ::kill(pid, SIGKILL);
    return 1;
  }
  std::mutex mtx;
  std::map<std::string, snakepit::pool_actor> members{{"a", *pool_a}, {"b", *pool_b}};
  snakepit::cluster_options opts;
  opts.name = "cluster";
  opts.members = {"a", "b"};
  opts.queue_timeout = 120s;
  opts.status_interval = 200ms;
  opts.rejoin_backoff = snakepit::restart_backoff{20ms, 200ms};
  auto cluster = snakepit::spawn_cluster_pool(sys, opts, [&](const std::string& name) {
    std::lock_guard<std::mutex> guard{mtx};
    return std::optional<snakepit::pool_actor>{members.at(name)};
  });
  if (!await_member(sys, cluster, "a", true) || !await_member(sys, cluster, "b", true)) {
    fmt::print(stderr, "the cluster's members did not join\n");
    return 1;
  }

  auto burn = [] { return snakepit::make_request("cpu_burn", {{"milliseconds", 5}}); };
  const int clients = 16;
  std::vector<std::string> names{"one-node", "cluster"};
  std::vector<round_samples> samples(names.size());
  auto round = [&](int scale, bool keep) {
    std::vector<run_result> got;
    got.push_back(event_callers_run(sys, pool_sender(*one, burn), clients,
                                    calls / scale / clients));
    got.push_back(event_callers_run(sys, pool_sender(cluster, burn), clients,
                                    calls / scale / clients));
    if (keep)
      for (std::size_t k = 0; k < names.size(); ++k)
        samples[k].add(got[k]);
  };
  fmt::print("cluster_bench: cpu_burn(5 ms), {} callers, {} calls per variant and round, {} "
             "rounds; one node of 2 workers vs a cluster of 2 nodes of 1 worker\n",
             clients, calls, rounds);
  round(10, false);
  for (int r = 0; r < rounds; ++r)
    round(1, true);
  print_variants(names, samples);

  // Failover: 16 sleeps of 100 ms on 2 slots (one per node, 14 queued in the
  // cluster); node b broken 50 ms in.
  auto run_failover = [&](int sig) {
    clk::time_point broke;
    auto got = sleepers(sys, cluster, clients, 0.1, 50ms, [&] {
      broke = clk::now();
      ::kill(b, sig);
    });
    return measure(got, broke);
  };
  auto killed = run_failover(SIGKILL);
  ::waitpid(b, nullptr, 0);
  // Back again (as a supervisor's reconnect would find it), then frozen.
  b = start_node(dir, "b", b_port, 1);
  pool_b = connect_node(sys, b_port, watch);
  if (!pool_b) {
    fmt::print(stderr, "node b did not come back\n");
    return 1;
  }
  {
    std::lock_guard<std::mutex> guard{mtx};
    members["b"] = *pool_b;
  }
  auto rejoin_start = clk::now();
  bool rejoined = await_member(sys, cluster, "b", true);
  auto rejoin_ms = ms_between(rejoin_start, clk::now());
  auto frozen = run_failover(SIGSTOP);
  ::kill(b, SIGKILL);
  ::kill(b, SIGCONT);
  ::waitpid(b, nullptr, 0);

  fmt::print("\nFailover: {} sleeps of 100 ms, one slot per node, node b broken 50 ms in\n",
             clients);
  table ft({"break", "affected answered (ms)", "all answered (ms)", "node_down", "ok", "other"});
  for (auto [what, f] : {std::pair{"SIGKILL", killed}, std::pair{"SIGSTOP (heartbeat 1 s)", frozen}})
    ft.add({what, fixed(f.affected_ms, 0), fixed(f.drained_ms, 0), std::to_string(f.node_down),
            std::to_string(f.ok), std::to_string(f.other)});
  ft.print();
  fmt::print("node b back: rejoined the cluster {} ms after it was reachable{}\n",
             fixed(rejoin_ms, 0), rejoined ? "" : " (NOT within 10 s)");

  auto rate = [&](std::size_t k) { return median(samples[k].rate); };
  double ratio = rate(1) / rate(0);
  fmt::print("\nRatios of medians\n");
  table rt({"ratio", "value", "aim", "verdict"});
  rt.add({"cluster calls/s / one-node calls/s", fixed(ratio, 2), ">= 0.9", verdict(ratio >= 0.9)});
  // Every call queued in the cluster must run on the survivor: only what ran
  // on the broken node fails.
  bool kill_ok = killed.node_down == 1 && killed.other == 0 && killed.ok == clients - 1;
  bool stop_ok = frozen.node_down == 1 && frozen.other == 0 && frozen.ok == clients - 1;
  rt.add({"SIGKILL: ms until its callers answered", fixed(killed.affected_ms, 0),
          "< heartbeat timeout + 1000", verdict(killed.affected_ms < 2000 && kill_ok)});
  rt.add({"SIGSTOP: ms until its callers answered", fixed(frozen.affected_ms, 0),
          "< heartbeat timeout + 1000", verdict(frozen.affected_ms < 2000 && stop_ok)});
  rt.print();
  result_line("cluster", "throughput_ratio", ratio);
  result_line("cluster", "kill_answered_ms", killed.affected_ms);
  result_line("cluster", "stop_answered_ms", frozen.affected_ms);
  // The cluster's resolver refers to locals of main: stop it (and the
  // stand-ins) before they go.
  {
    caf::scoped_actor self{sys};
    for (auto h : {caf::actor_cast<caf::actor>(cluster), caf::actor_cast<caf::actor>(*one),
                   caf::actor_cast<caf::actor>(*pool_a), caf::actor_cast<caf::actor>(*pool_b)}) {
      self->send_exit(h, caf::exit_reason::user_shutdown);
      self->wait_for(h);
    }
  }
  for (auto pid : {solo, a})
    ::kill(pid, SIGTERM);
  for (auto pid : {solo, a})
    ::waitpid(pid, nullptr, 0);
  return finish(kill_ok && stop_ok ? 0 : 1);
}
