// `snakepit inspect` and `snakepit diagnose`: read a running tree's status
// over its control endpoint and show it.

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "commands.hpp"
#include "output.hpp"
#include "snakepit/actors/run_registry.hpp"
#include "snakepit/observability/control_file.hpp"
#include "snakepit/observability/diagnosis.hpp"
#include "snakepit/observability/machine_info.hpp"
#include "snakepit/observability/process_cpu.hpp"
#include "snakepit/observability/status_json.hpp"

namespace snakepit::cli {

namespace {

struct endpoint {
  std::string url;
  std::string token;
  std::string label;
};

/// Finds the endpoint to read, or says why there is none.
caf::expected<endpoint> find_endpoint(const attach_options& opts) {
  if (!opts.url.empty())
    return endpoint{opts.url, {}, opts.url};
  auto runs = find_running_trees(run_registry::instance().dir());
  if (opts.pid != 0) {
    for (auto& r : runs)
      if (r.pid == opts.pid)
        return endpoint{r.url, r.token, fmt::format("tree {} (pid {}, {})", r.tree, r.pid, r.file)};
    return make_error(errc::bad_arguments,
                      fmt::format("no running `snakepit run` with pid {} (of this user) "
                                  "found in {}",
                                  opts.pid, run_registry::instance().dir()));
  }
  if (!run_registry::instance().trusted())
    return make_error(errc::bad_arguments,
                      fmt::format("the run registry {} is not safe to use (another user's, "
                                  "or writable by others; see the warning above), so running "
                                  "trees cannot be found; remove it or set "
                                  "SNAKEPIT_RUNTIME_PARENT, or pass --url",
                                  run_registry::instance().dir()));
  if (runs.empty())
    return make_error(errc::bad_arguments,
                      fmt::format("no running `snakepit run` found in {}; start one with "
                                  "`snakepit run TREE.toml`, or pass --url of a metrics "
                                  "endpoint",
                                  run_registry::instance().dir()));
  if (runs.size() > 1) {
    std::string list;
    for (auto& r : runs)
      list += fmt::format("\n  --pid {}  tree {} ({})", r.pid, r.tree, r.file);
    return make_error(errc::bad_arguments,
                      "several trees are running; choose one with --pid:" + list);
  }
  auto& r = runs.front();
  return endpoint{r.url, r.token, fmt::format("tree {} (pid {}, {})", r.tree, r.pid, r.file)};
}

/// Why a request got no answer, in words (httplib's own names are one word:
/// "Connection").
std::string unreachable_reason(httplib::Error err) {
  switch (err) {
    case httplib::Error::Connection:
      return "the connection was refused or failed: nothing listens there (is the tree "
             "running, and are the host and port right?)";
    case httplib::Error::ConnectionTimeout:
      return "no answer to the connection within 2 s (a firewall, or a host that is down?)";
    case httplib::Error::Read:
      return "the connection broke while reading the answer (not a snakepit endpoint, or "
             "it stopped?)";
    case httplib::Error::Write:
      return "the connection broke while sending the request";
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLServerVerification:
      return "the TLS handshake failed (snakepit's status endpoints speak plain HTTP)";
    default:
      return httplib::to_string(err);
  }
}

caf::expected<std::string> fetch(const endpoint& ep, const std::string& path) {
  httplib::Client client{ep.url};
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(10, 0);
  httplib::Headers headers;
  if (!ep.token.empty())
    headers.emplace("Authorization", "Bearer " + ep.token);
  // Whatever answers on that port (maybe not ours) is read up to a bound.
  constexpr std::size_t max_response_bytes = 16u << 20;
  std::string body;
  bool too_large = false;
  auto res = client.Get(path.c_str(), headers, [&](const char* data, std::size_t n) {
    if (body.size() + n > max_response_bytes) {
      too_large = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (too_large)
    return make_error(errc::internal, fmt::format("{}{} sent more than {} bytes: not a "
                                                  "snakepit endpoint?",
                                                  ep.url, path, max_response_bytes));
  if (!res)
    return make_error(errc::internal, fmt::format("cannot reach {}{}: {}", ep.url, path,
                                                  unreachable_reason(res.error())));
  if (res->status != 200)
    return make_error(errc::internal, fmt::format("{}{} answered {}: {}", ep.url, path,
                                                  res->status, body));
  return body;
}

caf::expected<tree_status> fetch_status(const endpoint& ep) {
  auto body = fetch(ep, "/status");
  if (!body)
    return std::move(body.error());
  return tree_status_from_json(*body);
}

std::string bytes_text(double b) {
  if (b <= 0)
    return "-";
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", b, units[u]);
}

std::string age_text(caf::timespan t) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(t).count();
  if (s < 60)
    return fmt::format("{}s", s);
  if (s < 3600)
    return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

std::string render(const tree_status& st, const std::string& label) {
  std::string out = fmt::format("{}\n", label);
  for (auto& p : st.pools) {
    auto profile = p.workers.empty() ? std::string{"-"} : p.workers.front().profile;
    std::uint64_t recycled = 0;
    std::string recycle_reasons;
    for (auto& [why, n] : p.recycles) {
      recycled += n;
      recycle_reasons += fmt::format("{}{}={}", recycle_reasons.empty() ? "" : ",", why, n);
    }
    auto load = p.capacity == 0 ? 0.0 : 100.0 * p.busy / p.capacity;
    out += fmt::format("\npool {}{}  {}  profile {}  workers {}/{}  capacity {}  busy {} "
                       "({:.0f}%)  queued {}/{}  sessions {}  up {}\n",
                       p.name, p.node.empty() ? "" : " (on node " + p.node + ")", p.state,
                       profile, p.ready, p.size, p.capacity, p.busy, load,
                       p.queued, p.queue_max, p.sessions, age_text(p.uptime));
    out += fmt::format("  requests {} ok, {} failed (queue full {}, queue timeouts {}), "
                       "{} re-dispatched  restarts: {} crashes, {} kills, {} recycles{}\n",
                       p.served, p.failed, p.queue_full, p.queue_timeouts, p.redispatched,
                       p.crashes,
                       p.replacements, recycled,
                       recycle_reasons.empty() ? "" : " (" + recycle_reasons + ")");
    if (p.breaker != "closed" || p.breaker_opened > 0 || p.retries > 0 || p.poisoned > 0
        || p.poison_refused > 0)
      out += fmt::format("  crash barrier: breaker {} (opened {}x, {} refused)  {} retries  "
                         "{} poisoned request(s), {} refused\n",
                         p.breaker, p.breaker_opened, p.breaker_refused, p.retries, p.poisoned,
                         p.poison_refused);
    if (p.max_size > 0)
      out += fmt::format("  autoscaling {}..{} workers: {} up, {} down so far\n", p.min_size,
                         p.max_size, p.scale_ups, p.scale_downs);
    if (!p.members.empty()) {
      out += fmt::format("  {:<12} {:<22} {:<9} {:>8} {:>9} {:>8} {:>6} {:>5} {:>5} {:>10}\n",
                         "MEMBER", "NODE", "STATE", "CAPACITY", "IN FLIGHT", "SERVED",
                         "FAILED", "LOST", "JOINS", "LATENCY");
      for (auto& m : p.members)
        out += fmt::format("  {:<12} {:<22} {:<9} {:>8} {:>9} {:>8} {:>6} {:>5} {:>5} {:>8.2f}ms\n",
                           m.name, m.node.empty() ? "(this process)" : m.node,
                           m.connected ? "connected" : "lost", m.capacity, m.in_flight,
                           m.served, m.failed, m.lost, m.joins,
                           static_cast<double>(m.latency_us) / 1000.0);
    }
    if (p.workers.empty())
      continue;
    out += fmt::format("  {:<10} {:>7}  {:<8} {:>7} {:>10}  {:>7}  {:>8} {:>6}  {:<16} {}\n",
                       "WORKER", "PID", "STATE", "AGE", "RSS", "BUSY", "SERVED", "FAILED",
                       "PYTHON", "GIL");
    for (auto& w : p.workers) {
      auto local = w.id.rfind('/') == std::string::npos ? w.id : w.id.substr(w.id.rfind('/') + 1);
      auto state = w.draining ? std::string{"draining"} : w.state;
      auto gil = w.free_threaded ? (w.gil_enabled ? "on (free-threaded build)" : "off")
                                 : (w.gil_enabled ? "on" : "off");
      out += fmt::format("  {:<10} {:>7}  {:<8} {:>7} {:>10}  {:>3}/{:<3}  {:>8} {:>6}  {:<16} {}\n",
                         local, w.pid, state, age_text(w.age),
                         bytes_text(static_cast<double>(w.rss_bytes)), w.in_flight, w.capacity,
                         w.served, w.failed, w.python_version + " " + w.implementation, gil);
      if (w.transport == "unary")
        out += fmt::format("  {:<10} calls go one gRPC call each (transport unary)\n", "");
      if (w.python_events_dropped > 0)
        out += fmt::format("  {:<10} dropped {} Python telemetry events\n", "",
                           w.python_events_dropped);
    }
  }
  return out;
}

} // namespace

int run_inspect(const inspect_options& opts) {
  auto ep = find_endpoint(opts.attach);
  if (!ep) {
    print_error(ep.error());
    return exit_failed;
  }
  for (;;) {
    auto st = fetch_status(*ep);
    if (!st) {
      print_error(st.error());
      return exit_failed;
    }
    if (opts.json)
      std::cout << to_json(*st) << std::endl;
    else if (opts.watch > 0)
      std::cout << "\033[H\033[2J" << render(*st, ep->label) << std::flush;
    else
      std::cout << render(*st, ep->label);
    if (opts.watch <= 0)
      return exit_ok;
    std::this_thread::sleep_for(std::chrono::duration<double>(opts.watch));
  }
}

namespace {

/// Whether the tree diagnosed runs on this machine: found in this user's run
/// registry, or a --url on the loopback interface.
bool on_this_machine(const attach_options& opts) {
  if (opts.url.empty())
    return true;
  for (const char* local : {"//127.", "//localhost", "//[::1]"})
    if (opts.url.find(local) != std::string::npos)
      return true;
  return false;
}

/// How long `diagnose` watches the workers (see run_diagnose).
constexpr auto diagnose_window = std::chrono::seconds{1};

} // namespace

int run_diagnose(const attach_options& opts, bool json) {
  auto machine = read_machine_info();
  std::vector<pool_status> pools;
  auto ep = find_endpoint(opts);
  std::string note;
  if (ep) {
    auto st = fetch_status(*ep);
    if (!st) {
      print_error(st.error());
      return exit_failed;
    }
    // A second look a moment later: what the workers did in between (their
    // run-queue waits, their tools' time) tells calls starved of CPU from
    // calls waiting for I/O. Only for a tree on this machine: another
    // machine's pids name other processes here.
    auto sched_before = on_this_machine(opts)
                          ? read_processes_cpu(worker_pids(st->pools))
                          : std::map<std::int32_t, process_cpu>{};
    if (!sched_before.empty()) {
      auto t0 = std::chrono::steady_clock::now();
      std::this_thread::sleep_for(diagnose_window);
      auto again = fetch_status(*ep);
      if (again) {
        auto sched_after = read_processes_cpu(worker_pids(again->pools));
        add_worker_window(machine, st->pools, again->pools, sched_before, sched_after,
                          std::chrono::duration_cast<caf::timespan>(
                            std::chrono::steady_clock::now() - t0));
        st = std::move(again);
      }
    }
    pools = std::move(st->pools);
  } else if (opts.pid != 0 || !opts.url.empty()) {
    print_error(ep.error());
    return exit_failed;
  } else {
    note = describe(ep.error()).message;
  }
  auto d = diagnose(machine, pools);
  if (json) {
    std::cout << render_json(d) << std::endl;
  } else {
    if (ep)
      std::cout << ep->label << "\n";
    std::cout << render_text(d);
    if (!note.empty())
      std::cout << "\n(machine only: " << note << ")\n";
  }
  return exit_ok;
}

} // namespace snakepit::cli
