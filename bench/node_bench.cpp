// node_bench: a pool of another node (a real `snakepit run` with [node] on
// loopback TCP, used through connect_pool) against the same pool in-process,
// in the same run, interleaved; then how long after a node is killed under
// load every caller has its answer.
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 node_bench [--rounds 5] [--seq-calls 1500] [--calls 6000]
//
// Variants (pools of 2 process workers of the showcase adapter, no-op calls):
//   local-1    one event-based caller, one call at a time, the in-process pool
//   remote-1   the same against the other node's pool
//   local-16   16 event-based callers, one call in flight each
//   remote-16  the same against the other node's pool
// Then 16 callers of a 2 s sleep on the other node, which is SIGKILLed 300 ms in:
// the time until all 16 have their answer (node_down), with the heartbeat.

#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "bench_actors.hpp"
#include "bench_common.hpp"
#include "bench_nodes.hpp"
#include "snakepit/snakepit.hpp"

using namespace bench;

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int rounds = int_option(argc, argv, "--rounds", 5);
  int seq_calls = int_option(argc, argv, "--seq-calls", 1500);
  int calls = int_option(argc, argv, "--calls", 6000);
  python_from_env();
  snakepit::set_log_level(snakepit::log_level::warning);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  snakepit::use_distribution(cfg);
  caf::actor_system sys{cfg};
  auto local = start_showcase_pool(sys, "bench", 2, [](snakepit::pool_config& pc) {
    pc.queue_timeout = std::chrono::seconds{120};
  });
  if (!local) {
    fmt::print(stderr, "the local pool failed to start\n");
    return 1;
  }
  auto dir = snakepit::runtime_dir();
  auto port = free_port();
  auto node = start_node(dir, "bench-node", port, 2);
  auto remote = connect_node(sys, port);
  if (!remote) {
    fmt::print(stderr, "no node: {}\n", snakepit::describe(remote.error()).message);
    ::kill(node, SIGKILL);
    return 1;
  }
  auto noop = [] { return snakepit::make_request("noop"); };
  const int clients = 16;
  std::vector<std::string> names{"local-1", "remote-1", "local-16", "remote-16"};
  std::vector<round_samples> samples(names.size());
  auto round = [&](int scale, bool keep) {
    std::vector<run_result> got;
    got.push_back(event_callers_run(sys, pool_sender(*local, noop), 1, seq_calls / scale));
    got.push_back(event_callers_run(sys, pool_sender(*remote, noop), 1, seq_calls / scale));
    got.push_back(event_callers_run(sys, pool_sender(*local, noop), clients,
                                    calls / scale / clients));
    got.push_back(event_callers_run(sys, pool_sender(*remote, noop), clients,
                                    calls / scale / clients));
    if (keep)
      for (std::size_t k = 0; k < names.size(); ++k)
        samples[k].add(got[k]);
  };
  fmt::print("node_bench: 2 workers each side, {} rounds; {} calls one at a time, {} with {} "
             "callers per round; node at 127.0.0.1:{}\n",
             rounds, seq_calls, calls, clients, port);
  round(10, false);
  for (int r = 0; r < rounds; ++r)
    round(1, true);
  print_variants(names, samples);

  // A node killed under load: how long until every caller has an answer.
  double answered_ms = 0;
  int node_down = 0, others = 0;
  {
    caf::scoped_actor self{sys};
    using handle = decltype(self->request(*remote, caf::infinite, snakepit::execute_atom::value,
                                          noop()));
    std::vector<handle> open;
    for (int i = 0; i < clients; ++i)
      open.push_back(self->request(*remote, caf::infinite, snakepit::execute_atom::value,
                                   snakepit::make_request("sleep", {{"seconds", 2.0}})));
    std::this_thread::sleep_for(std::chrono::milliseconds{300});
    auto killed = clk::now();
    ::kill(node, SIGKILL);
    for (auto& h : open)
      h.receive([&](snakepit::execute_reply&) { ++others; },
                [&](caf::error& e) {
                  (snakepit::is(e, snakepit::errc::node_down) ? node_down : others) += 1;
                });
    answered_ms = ms_between(killed, clk::now());
  }
  ::waitpid(node, nullptr, 0);
  fmt::print("\nnode SIGKILLed with {} calls open there: all answered {:.0f} ms later ({} "
             "node_down, {} other)\n",
             clients, answered_ms, node_down, others);

  auto p50 = [&](std::size_t k) { return median(samples[k].p50); };
  auto rate = [&](std::size_t k) { return median(samples[k].rate); };
  double latency_ratio = p50(1) / p50(0);
  double throughput_ratio = rate(3) / rate(2);
  fmt::print("\nRatios of medians\n");
  table rt({"ratio", "value", "aim", "verdict"});
  rt.add({"remote-1 p50 / local-1 p50", fixed(latency_ratio, 2), "<= 2",
          verdict(latency_ratio <= 2.0)});
  rt.add({"remote-16 calls/s / local-16 calls/s", fixed(throughput_ratio, 2), ">= 0.7",
          verdict(throughput_ratio >= 0.7)});
  rt.add({"ms from SIGKILL until every caller answered", fixed(answered_ms, 0),
          "< heartbeat timeout + 1000", verdict(answered_ms < 4000 && node_down == clients)});
  rt.print();
  result_line("node", "p50_ratio", latency_ratio);
  result_line("node", "throughput_ratio", throughput_ratio);
  result_line("node", "kill_answered_ms", answered_ms);
  stop_pool_within(sys, *local, std::chrono::seconds{20});
  return finish(0);
}
