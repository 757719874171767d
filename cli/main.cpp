// The `snakepit` command line: one-shot calls and the demo.

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <signal.h>

#include <climits>
#include <cstdlib>
#include <map>
#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <fmt/format.h>

#include "commands.hpp"
#include "host.hpp"
#include "map.hpp"
#include "output.hpp"
#include "interrupt_watcher.hpp"
#include "progress.hpp"
#include "repeat_call.hpp"
#include "startup_log.hpp"
#include "snakepit/actors/detail/read_all.hpp"
#include "snakepit/actors/detail/run_captured.hpp"
#include "snakepit/actors/detail/trusted_files.hpp"
#include "snakepit/actors/python_command.hpp"
#include "snakepit/actors/run_registry.hpp"
#include "gateway_start.hpp"
#include "snakepit/supervision/plugin_loader.hpp"
#include "gateway_pool.hpp"
#include "remote_call.hpp"
#include "snakepit/observability/token_file.hpp"
#include "snakepit/observability/control_file.hpp"
#include "snakepit/observability/status_server.hpp"
#include "snakepit/snakepit.hpp"

namespace {

using namespace snakepit;
using std::chrono::steady_clock;

using namespace snakepit::cli;

// --- snakepit call ----------------------------------------------------------

struct call_options {
  pool_options pool;
  std::string tool;
  std::string args_json = "{}";
  std::int64_t timeout_ms = 60000;
  bool timings = false;
  std::uint32_t repeat = 1;
  std::uint32_t concurrency = 1;
  bool stream = false;
  /// With --repeat: the same calls on a process pool and on a thread pool of
  /// the same slots (--concurrency), compared.
  bool compare_profiles = false;
  /// The call may run twice: retried after a worker crash.
  bool idempotent = false;
  /// Through a running tree's gateway instead of a pool of its own.
  std::string connect;
  std::string remote_pool;
  std::string token_file;
  std::string ca_file;
};

/// Runs a streaming tool: one JSON line per item on stdout, as each arrives;
/// one credit per item printed, so a slow terminal holds the generator back.
/// SIGINT or SIGTERM cancels the stream (Python closes the generator).
/// Returns the exit code.
int stream_call(caf::actor_system& sys, const pool_actor& pool, const call_options& opts,
                execute_request req) {
  caf::scoped_actor self{sys};
  interrupt_watcher watcher{
    [me = caf::actor_cast<caf::actor>(self)] { caf::anon_send(me, interrupt_atom::value); }};
  caf::expected<stream_handle> handle{caf::error{}};
  self->request(pool, caf::infinite, execute_stream_atom::value, std::move(req),
                caf::actor_cast<caf::actor>(self))
    .receive([&](stream_handle& h) { handle = std::move(h); },
             [&](caf::error& err) { handle = std::move(err); });
  if (!handle) {
    print_error(handle.error());
    return exit_failed;
  }
  int code = -1;
  while (code < 0) {
    self->receive(
      [&](interrupt_atom) {
        caf::anon_send(handle->worker, stream_cancel_atom::value, handle->id);
        std::cout.flush();
        print_error("cancelled", "interrupted: the stream was cancelled and its generator "
                                 "closed");
        code = exit_interrupted;
      },
      [&](stream_item_atom, std::uint64_t, std::uint64_t, const value& item) {
        // Flushed per item: a pipe reader sees each item as it arrives.
        std::cout << item.to_json() << '\n' << std::flush;
        caf::anon_send(handle->worker, stream_ack_atom::value, handle->id, std::uint32_t{1});
      },
      [&](stream_end_atom, std::uint64_t, const stream_summary& summary) {
        if (opts.timings) {
          auto us = [](caf::timespan t) {
            return std::chrono::duration_cast<std::chrono::microseconds>(t).count();
          };
          log_line(fmt::format("{} items, {} us in Python ({} us CPU), worker {}",
                               summary.items, us(summary.python_wall), us(summary.python_cpu),
                               summary.worker_id));
        }
        code = exit_ok;
      },
      [&](stream_error_atom, std::uint64_t, const caf::error& err) {
        std::cout.flush();
        print_error(err);
        code = exit_failed;
      });
  }
  std::cout.flush();
  return code;
}

/// Largest `--args @FILE` / `--args -` the command line reads.
constexpr std::size_t max_args_file_bytes = 256u << 20;

/// The text of `--args`: as given, or read from `@FILE`, or from stdin for
/// `-` (for arguments too big for a command line).
caf::expected<std::string> args_text(const std::string& given) {
  if (given != "-" && (given.empty() || given.front() != '@'))
    return given;
  int fd = 0;
  std::string source = "standard input";
  if (given != "-") {
    source = given.substr(1);
    fd = ::open(source.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return make_error(errc::bad_arguments, fmt::format("--args {}: cannot open {}: {}", given,
                                                         source, std::strerror(errno)));
  }
  bool over = false;
  auto text = detail::read_all(fd, max_args_file_bytes, false, &over);
  if (fd != 0)
    ::close(fd);
  if (over)
    return make_error(errc::payload_too_large,
                      fmt::format("--args: {} holds more than {} bytes", source,
                                  max_args_file_bytes));
  return text;
}

repeat_plan repeat_plan_of(const call_options& opts, value::map args) {
  repeat_plan plan;
  plan.tool = opts.tool;
  plan.args = std::move(args);
  plan.timeout_ms = opts.timeout_ms;
  plan.repeat = opts.repeat;
  plan.concurrency = opts.concurrency;
  plan.timings = opts.timings;
  plan.print_results = !opts.compare_profiles;
  plan.idempotent = opts.idempotent;
  return plan;
}

int run_call(const call_options& opts) {
  bool repeating = opts.repeat > 1 || opts.concurrency > 1;
  if (!apply_log_level(opts.pool.log_level))
    return exit_usage;
  auto text = args_text(opts.args_json);
  if (!text) {
    print_error(text.error());
    return exit_usage;
  }
  auto args = value::from_json(*text);
  if (!args || !args->is_map()) {
    error_info info;
    info.kind = "bad_arguments";
    info.message = args ? "--args must be a JSON object of keyword arguments, e.g. "
                          "'{\"a\": 1}'; got " + text->substr(0, 200)
                        : "--args is not valid JSON: " + args.error().message;
    print_error(info);
    return exit_usage;
  }
  if (!opts.connect.empty()) {
    if (opts.remote_pool.empty()) {
      print_error("bad_arguments", "--connect needs --pool NAME: the pool of the running tree "
                                   "to call (`snakepit ls` shows the trees and their pools)");
      return exit_usage;
    }
    cli::remote_call rc;
    rc.address = opts.connect;
    rc.pool = opts.remote_pool;
    rc.tool = opts.tool;
    rc.arguments = *args->if_map();
    rc.timeout_ms = opts.timeout_ms;
    rc.stream = opts.stream;
    rc.timings = opts.timings;
    rc.idempotent = opts.idempotent;
    rc.ca_file = opts.ca_file;
    if (!opts.token_file.empty()) {
      auto token = read_token_file(opts.token_file, "--token-file");
      if (!token) {
        print_error(token.error());
        return exit_usage;
      }
      rc.token = std::move(*token);
    }
    if (!opts.stream && repeating) {
      // Many calls: the same driver as for a pool of our own, through a
      // proxy that calls the remote pool over the gateway.
      block_interrupt_signals();
      host h;
      auto proxy = cli::connect_gateway_pool(
        *h.sys, cli::gateway_address{rc.address, rc.pool, rc.token, rc.ca_file});
      if (!proxy) {
        print_error(proxy.error());
        return exit_usage;
      }
      auto plan = repeat_plan_of(opts, rc.arguments);
      auto outcome = call_repeatedly(*h.sys, *proxy, plan);
      caf::anon_send_exit(*proxy, caf::exit_reason::user_shutdown);
      log_line(fmt::format("{} (pool {} through the gateway at {}{})", outcome.text(plan),
                           rc.pool, rc.address, outcome.interrupted ? "; interrupted" : ""));
      if (outcome.interrupted)
        return exit_interrupted;
      return outcome.failed == 0 ? exit_ok : exit_failed;
    }
    return cli::run_remote_call(rc);
  }
  // Before any thread starts, so all inherit the mask: the watcher thread
  // takes the signal and cancels the stream, or ends the run with a summary.
  if (opts.stream || repeating)
    block_interrupt_signals();
  if (repeating)
    return run_repeat(opts.pool, repeat_plan_of(opts, *args->if_map()), opts.compare_profiles);
  if (opts.compare_profiles) {
    print_error("bad_arguments", "--compare-profiles needs --repeat N (and --concurrency C, "
                                 "the slots of each profile): it compares many calls");
    return exit_usage;
  }
  host h;
  auto cfg = opts.pool.to_config("call");
  cfg.request_timeout = std::chrono::milliseconds{std::max<std::int64_t>(1, opts.timeout_ms)};
  auto pool = h.start(cfg);
  if (!pool)
    return exit_failed;
  auto req = make_request(opts.tool, *args->if_map(),
                          std::chrono::milliseconds{opts.timeout_ms});
  req.idempotent = opts.idempotent;
  if (opts.stream) {
    auto code = stream_call(*h.sys, *pool, opts, std::move(req));
    stop_pool(*h.sys, *pool);
    return code;
  }
  auto reply = call(*h.sys, *pool, std::move(req));
  stop_pool(*h.sys, *pool);
  if (!reply) {
    print_error(reply.error());
    return exit_failed;
  }
  std::cout << reply_json(*reply, opts.timings) << std::endl;
  return exit_ok;
}

// --- snakepit demo ----------------------------------------------------------

double ms_since(steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(steady_clock::now() - start).count();
}

int run_demo(const pool_options& opts_in) {
  auto opts = opts_in;
  if (opts.workers < 2)
    opts.workers = 2;
  if (!apply_log_level(opts.log_level))
    return exit_usage;
  host h;
  auto& sys = *h.sys;
  fmt::print("snakepit demo: a pool of {} Python workers running {}\n\n", opts.workers,
             opts.adapter);
  auto t0 = steady_clock::now();
  auto pool = start_pool(sys, opts.to_config("demo"));
  if (!pool) {
    print_error(pool.error());
    return exit_failed;
  }
  fmt::print("pool ready in {:.1f} ms\n\n", ms_since(t0));

  auto show = [&](const char* what, execute_request req) {
    auto start = steady_clock::now();
    auto reply = call(sys, *pool, std::move(req));
    auto total = ms_since(start);
    if (reply) {
      auto json = reply->result.to_json();
      if (json.size() > 160)
        json = json.substr(0, 157) + "...";
      fmt::print("  {:<34} -> {}\n  {:<34}    {:.2f} ms round trip, {:.2f} ms in Python "
                 "({})\n",
                 what, json, "", total,
                 std::chrono::duration<double, std::milli>(reply->python_wall).count(),
                 reply->worker_id);
    } else {
      auto info = describe(reply.error());
      fmt::print("  {:<34} -> error {}: {}\n", what, info.kind, info.message);
    }
  };
  fmt::print("calls:\n");
  show("worker_info()", make_request("worker_info"));
  show("add(a=2, b=40)", make_request("add", {{"a", 2}, {"b", 40}}));
  show("add(a=9007199254740993, b=0)",
       make_request("add", {{"a", std::int64_t{9007199254740993}}, {"b", 0}}));
  show("echo(nested value)",
       make_request("echo", {{"value", value{{"list", value::make_list({1, 2.5, "three"})},
                                              {"bytes", bytes{std::string("\x00\xff", 2)}},
                                              {"none", nullptr}}}}));
  show("bytes_length(1 MiB of bytes)",
       make_request("bytes_length", {{"data", bytes{std::string(1 << 20, 'x')}}}));
  show("fail(message='boom')", make_request("fail", {{"message", "boom"}}));
  show("no_such_tool()", make_request("no_such_tool"));
  show("sleep(seconds=0.2), 1 s deadline",
       make_request("sleep", {{"seconds", 0.2}}, std::chrono::seconds{1}));

  // Throughput: many no-op calls with as many in flight as there are workers.
  caf::scoped_actor self{sys};
  const int calls = 2000;
  int sent = 0, done = 0, failed = 0;
  auto start = steady_clock::now();
  auto send_one = [&] {
    ++sent;
    self->request(*pool, caf::infinite, execute_atom::value, make_request("noop"))
      .receive([&](execute_reply&) { ++done; }, [&](caf::error&) { ++failed; });
  };
  // One caller; the pool spreads calls over the workers.
  while (sent < calls)
    send_one();
  auto secs = ms_since(start) / 1000.0;
  fmt::print("\n{} no-op calls one after another: {:.0f} calls/s, {:.1f} us per call "
             "({} failed)\n",
             calls, calls / secs, secs * 1e6 / calls, failed);

  caf::scoped_actor status_self{sys};
  status_self->request(*pool, caf::infinite, status_atom::value)
    .receive(
      [&](pool_status& st) {
        fmt::print("\npool '{}': {} workers ready, {} served, {} failed\n", st.name,
                   st.ready, st.served, st.failed);
        for (auto& w : st.workers)
          fmt::print("  {} pid {} python {} served {} failed {}\n", w.id, w.pid,
                     w.python_version, w.served, w.failed);
      },
      [&](caf::error& err) { print_error(err); });
  stop_pool(sys, *pool);
  fmt::print("\npool stopped\n");
  return exit_ok;
}

// --- snakepit check / run ----------------------------------------------------

/// The actor kinds of the plugin libraries a tree file names (`[plugins]`).
caf::expected<std::unique_ptr<actor_registry>> plugin_registry(const std::string& file) {
  auto registry = std::make_unique<actor_registry>();
  auto libraries = plugin_libraries(file);
  if (!libraries)
    return std::move(libraries.error());
  if (auto err = load_plugins(*libraries, *registry))
    return err;
  return registry;
}

int run_check(const std::string& file) {
  auto registry = plugin_registry(file);
  if (!registry) {
    print_error(registry.error());
    return exit_failed;
  }
  auto problems = check_tree_file(file, registry->get());
  if (!problems.empty()) {
    std::cerr << problems.size() << (problems.size() == 1 ? " problem" : " problems")
              << " in " << file << ":\n";
    for (auto& p : problems)
      std::cerr << "  " << p.to_string() << "\n";
    return exit_failed;
  }
  auto spec = load_tree_file(file, registry->get());
  if (!spec) {
    print_error(spec.error());
    return exit_failed;
  }
  std::cout << describe_tree(*spec);
  std::cout << "ok: the tree is valid\n";
  return exit_ok;
}

/// Pool name to number of workers, for the start-up progress display.
std::map<std::string, std::uint32_t> pool_sizes(const tree_node& node) {
  std::map<std::string, std::uint32_t> out;
  if (node.is_local_pool())
    out[node.name] = node.pool.size;
  for (auto& child : node.children)
    out.merge(pool_sizes(child));
  return out;
}

/// A running control endpoint and its file in the run registry (removed
/// when it ends).
struct control_endpoint {
  std::unique_ptr<status_server> server;
  std::string file;

  ~control_endpoint() {
    if (!file.empty())
      ::unlink(file.c_str());
  }
};

caf::expected<std::unique_ptr<control_endpoint>>
start_control_endpoint(const running_tree& tree, const std::string& name,
                       const std::string& file, const std::string& gateway) {
  auto out = std::make_unique<control_endpoint>();
  status_server::options opts;
  opts.http.token = make_control_token();
  auto server = status_server::start(opts, [&tree] { return tree.status(); });
  if (!server)
    return std::move(server.error());
  out->server = std::move(*server);
  control_info info;
  info.pid = ::getpid();
  info.start_time = process_start_time(info.pid);
  info.tree = name;
  char resolved[PATH_MAX];
  info.file = ::realpath(file.c_str(), resolved) != nullptr ? resolved : file;
  info.url = out->server->base_url();
  info.token = opts.http.token;
  info.gateway = gateway;
  auto written = write_control_file(run_registry::instance().dir(), info);
  if (!written) {
    // The tree serves all the same; only inspect/diagnose cannot find it.
    log_line("warning: snakepit inspect will not find this run: "
             + describe(written.error()).message);
    return out;
  }
  out->file = *written;
  return out;
}

/// Log level and format of `snakepit run`: a flag wins, then the file's
/// `[logging]`, then $SNAKEPIT_LOG_LEVEL / $SNAKEPIT_LOG_FORMAT, then info/text.
bool apply_run_logging(const std::string& level_flag, const std::string& format_flag,
                       const logging_spec& file) {
  if (!level_flag.empty()) {
    if (!apply_log_level(level_flag))
      return false;
  } else if (file.level) {
    set_log_level(*file.level);
  }
  if (!format_flag.empty()) {
    auto format = parse_log_format(format_flag);
    if (!format) {
      print_error("bad_arguments", "--log-format must be text or json; got '" + format_flag
                                     + "'");
      return false;
    }
    set_log_format(*format);
  } else if (file.format) {
    set_log_format(*file.format);
  }
  return true;
}


int run_tree(const std::string& file, const std::string& log_level,
             const std::string& log_format, bool print_address) {
  // Before the tree is read: the plugins decide which actor kinds exist, and
  // a kind nobody registered stops everything before anything starts.
  auto registry = plugin_registry(file);
  if (!registry) {
    print_error(registry.error());
    return exit_failed;
  }
  auto spec = load_tree_file(file, registry->get());
  if (!spec) {
    std::cerr << describe(spec.error()).message << std::endl;
    return exit_failed;
  }
  if (!apply_run_logging(log_level, log_format, spec->logging))
    return exit_usage;
  if (auto why = detail::unsafe_path_reason(file); !why.empty())
    log_line(fmt::format("warning: {} could be changed by another local user ({}): it decides "
                         "what this host runs",
                         file, why));
  // Signals belong to the command line, never to the library: block them in
  // every thread (all inherit this mask) and wait for them on one.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  host h{needs_distribution(*spec),
         node_tls{spec->node.tls_cert, spec->node.tls_key, spec->node.tls_ca}};
  if (h.setup_error) {
    print_error(h.setup_error);
    return exit_failed;
  }
  auto& sys = *h.sys;
  auto t0 = steady_clock::now();
  caf::expected<running_tree> tree{caf::error{}};
  {
    // On a terminal, a failed start reads once, from print_error below.
    startup_log held;
    startup_progress progress{pool_sizes(spec->root)};
    tree = start_tree(sys, *spec, registry->get());
    if (!tree)
      held.end(describe(tree.error()).message);
  }
  if (!tree) {
    print_error(tree.error());
    return exit_failed;
  }
  // The front door other processes call the tree through.
  auto gateway = cli::start_gateway(sys, *spec, *tree);
  if (!gateway) {
    tree->stop();
    print_error(gateway.error());
    return exit_failed;
  }
  std::string gateway_address = *gateway ? (*gateway)->address() : std::string{};
  if (!gateway_address.empty()) {
    log_line("gateway listening on " + gateway_address);
    if (print_address)
      std::cout << gateway_address << std::endl;
  }
  // Other nodes use the exported pools through CAF's middleman.
  std::unique_ptr<node_server> node;
  if (spec->node.enabled && !spec->node.exports.empty()) {
    node_options opts;
    opts.name = spec->node.name.empty() ? spec->root.name : spec->node.name;
    opts.listen = spec->node.listen;
    opts.exports = spec->node.exports;
    opts.insecure = spec->node.insecure;
    auto started = node_server::start(sys, opts, [t = *tree](const std::string& name) {
      return t.pool(name);
    });
    if (!started) {
      gateway->reset();
      tree->stop();
      print_error(started.error());
      return exit_failed;
    }
    node = std::move(*started);
    log_line(fmt::format("node '{}' listening on {}{} (exports: {})", opts.name,
                         node->address(), uses_tls(sys) ? " with TLS" : "",
                         fmt::join(opts.exports, ", ")));
  }
  // The control endpoint `snakepit inspect` and `diagnose` attach to.
  auto control = start_control_endpoint(*tree, spec->root.name, file, gateway_address);
  if (!control) {
    tree->stop();
    print_error(control.error());
    return exit_failed;
  }
  log_line(fmt::format("tree '{}' from {} running ({:.0f} ms to start); stop with SIGINT or "
                       "SIGTERM; see it with `snakepit inspect --pid {}`",
                       spec->root.name, file, ms_since(t0), ::getpid()));
  std::atomic<bool> stopping{false};
  auto root = tree->root();
  std::thread{[stop_signals, root, &stopping] {
    int sig = 0;
    if (sigwait(&stop_signals, &sig) == 0) {
      stopping = true;
      log_line(fmt::format("received {}; stopping the tree", sig == SIGINT ? "SIGINT" : "SIGTERM"));
      caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
    }
  }}.detach();
  caf::error reason;
  {
    caf::scoped_actor self{sys};
    self->monitor(root);
    self->receive([&](const caf::down_msg& msg) { reason = msg.reason; });
  }
  control->reset();
  node.reset();
  gateway->reset();  // open calls end with UNAVAILABLE
  tree->stop();  // waits for nothing more; cleans the tree's runtime directory
  if (stopping) {
    log_line("tree stopped");
    return exit_ok;
  }
  print_error(reason);
  return exit_failed;
}

// --- snakepit libraries -------------------------------------------------------

/// Prints the library compatibility table (thread safety, GIL release) that
/// the Python side keeps, by running it with the located interpreter.
int run_libraries(const std::string& python, bool json) {
  auto interpreter = locate_python(python);
  if (!interpreter) {
    print_error(interpreter.error());
    return exit_failed;
  }
  auto pythonpath = python_package_dir();
  if (auto* existing = std::getenv("PYTHONPATH"); existing && *existing)
    pythonpath += std::string{":"} + existing;
  ::setenv("PYTHONPATH", pythonpath.c_str(), 1);
  std::vector<std::string> args{*interpreter};
  for (auto& a : python_module_argv("snakepit_bridge.compat",
                                    json ? std::vector<std::string>{"--json"}
                                         : std::vector<std::string>{}))
    args.push_back(a);
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  if (::chdir(python_working_dir) != 0) {
    // "/" always exists; the bootstrap keeps the directory off sys.path anyway
  }
  ::execv(interpreter->c_str(), argv.data());
  error_info info;
  info.kind = "internal";
  info.message = "cannot run " + *interpreter + ": " + std::strerror(errno);
  print_error(info);
  return exit_failed;
}

// --- snakepit doctor ----------------------------------------------------------

/// Runs a program as `detail::run_captured` does (stdout and stderr together,
/// up to 1 MiB): (exit code, output), 127 when it cannot start.
std::pair<int, std::string> run_capture(const std::string& executable,
                                        const std::vector<std::string>& args) {
  auto run = detail::run_captured(executable, args, true, 1u << 20);
  if (!run)
    return {127, "cannot run " + executable + ": " + describe(run.error()).message};
  return {run->exit_code, std::move(run->output)};
}

/// Checks the environment a pool needs and says how to fix what is wrong.
int run_doctor(const std::string& python, const std::vector<std::string>& adapters,
               const std::vector<std::string>& python_path) {
  int problems = 0;
  auto report = [&](bool ok, const std::string& what, const std::string& fix = {}) {
    std::cout << (ok ? "ok    " : "FAIL  ") << what << '\n';
    if (!ok) {
      ++problems;
      if (!fix.empty())
        std::cout << "      fix: " << fix << '\n';
    }
  };
  auto interpreter = locate_python(python);
  if (!interpreter) {
    report(false, "Python interpreter: " + describe(interpreter.error()).message);
    std::cout << problems << " problem(s)\n";
    return exit_failed;
  }
  report(true, "Python interpreter: " + *interpreter);
  auto pythonpath = python_package_dir();
  ::setenv("PYTHONPATH", pythonpath.c_str(), 1);
  auto [rc, out] = run_capture(*interpreter, python_module_argv("snakepit_bridge.worker",
                                                                {"--check"}));
  auto check = value::from_json(detail::last_line(out));
  if (rc == 0 && check && check->is_map()) {
    auto& c = *check;
    report(true, fmt::format("snakepit_bridge {} from {} (wire {}), Python {} {}, grpcio {}, "
                             "protobuf {}, GIL {}",
                             c["snakepit_bridge_version"].as_string(), pythonpath,
                             c["wire"].as_string(), c["implementation"].as_string(),
                             c["python_version"].as_string(), c["grpc_version"].as_string(),
                             c["protobuf_version"].as_string(),
                             c["gil_enabled"].as_bool(true) ? "on" : "off"));
  } else {
    report(false, "snakepit_bridge worker check: " + detail::last_line(out),
           "set SNAKEPIT_PYTHON_PACKAGE_DIR to the directory holding snakepit_bridge, or "
           "reinstall snakepit");
  }
  for (auto& adapter : adapters) {
    auto dot = adapter.rfind('.');
    if (dot == std::string::npos) {
      report(false, "adapter '" + adapter + "': not a dotted path",
             "name it package.module.ClassName");
      continue;
    }
    // The adapter's name and the paths go in as argv: data, never code.
    std::vector<std::string> values{adapter};
    for (auto& dir : python_path)
      values.push_back(absolute_path(dir));
    auto [arc, aout] = run_capture(
      *interpreter,
      python_code_argv("import importlib\n"
                       "adapter, paths = sys.argv[1], sys.argv[2:]\n"
                       "sys.path[:0] = paths\n"
                       "module, _, name = adapter.rpartition('.')\n"
                       "cls = getattr(importlib.import_module(module), name)\n"
                       "from snakepit_bridge import BaseAdapter\n"
                       "assert issubclass(cls, BaseAdapter), 'not a BaseAdapter subclass'\n",
                       values));
    if (arc == 0)
      report(true, "adapter " + adapter + " imports");
    else
      report(false, "adapter " + adapter + ": " + detail::last_line(aout),
             "check --python-path and that the module imports with " + *interpreter);
  }
  try {
    auto runtime = runtime_dir();
    report(::access(runtime.c_str(), W_OK) == 0,
           "runtime directory " + runtime + " is writable",
           "set SNAKEPIT_RUNTIME_PARENT to a short, writable directory");
  } catch (const std::exception& e) {
    report(false, e.what(), "set SNAKEPIT_RUNTIME_PARENT to a short directory of your own");
  }
  if (auto& reg = run_registry::instance(); !reg.trusted())
    report(false, "run registry " + reg.dir() + " is not safe to use (see the warning above)",
           "remove it, or set SNAKEPIT_RUNTIME_PARENT to a directory of your own");
  std::cout << (problems == 0 ? std::string{"everything looks fine"}
                              : std::to_string(problems) + " problem(s)")
            << '\n';
  return problems == 0 ? exit_ok : exit_failed;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"snakepit: pools of supervised Python workers for C++ (CAF actors over "
               "gRPC)"};
  app.name("snakepit");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string{"snakepit "} + SNAKEPIT_VERSION);

  call_options call_opts;
  auto* call_cmd = app.add_subcommand("call", "Start a pool, call one tool, print the result "
                                              "as JSON");
  call_opts.pool.add_to(*call_cmd);
  call_cmd->add_option("--tool", call_opts.tool, "Tool to call")->required();
  auto* connect_opt = call_cmd->add_option(
    "--connect", call_opts.connect,
    "Call a running tree through its gateway (unix:/path or host:port, as `snakepit run` "
    "prints it) instead of starting a pool");
  call_cmd->add_option("--pool", call_opts.remote_pool, "With --connect: the tree's pool")
    ->needs(connect_opt);
  call_cmd->add_option("--token-file", call_opts.token_file,
                       "With --connect: a file holding the gateway's token (mode 0600)")
    ->needs(connect_opt);
  call_cmd->add_option("--ca-file", call_opts.ca_file,
                       "With --connect: PEM of the CA that signed the gateway's certificate "
                       "(TLS)")
    ->needs(connect_opt);
  call_cmd->add_option("--args", call_opts.args_json,
                       "Keyword arguments as a JSON object; @FILE reads them from a file, - "
                       "from standard input")
    ->capture_default_str();
  call_cmd->add_option("--timeout-ms", call_opts.timeout_ms, "Deadline of the call")
    ->capture_default_str()
    ->check(CLI::Range(std::int64_t{1}, std::int64_t{max_timeout.count()}));
  call_cmd->add_option("--repeat", call_opts.repeat, "Make the call N times")
    ->capture_default_str()
    ->check(CLI::Range(1u, 10000000u));
  call_cmd->add_option("--concurrency", call_opts.concurrency,
                       "With --repeat: calls in flight at once")
    ->capture_default_str()
    ->check(CLI::Range(1u, 100000u));
  call_cmd->add_flag("--compare-profiles", call_opts.compare_profiles,
                     "With --repeat: run the calls on a process pool of --concurrency workers, "
                     "then on one thread-profile worker of as many threads (the same slots), "
                     "and compare calls/s, latency, memory and start time")
    ->excludes(connect_opt);
  call_cmd->add_flag("--timings", call_opts.timings,
                     "Print {result, python_wall_us, python_cpu_us, worker, attempts}");
  call_cmd->add_flag("--idempotent", call_opts.idempotent,
                     "The call may run twice: retry it on another worker if its worker "
                     "crashes (the pool's retry_max_attempts)");
  call_cmd->add_flag("--stream", call_opts.stream,
                     "Call a streaming (generator) tool: one JSON line per item; "
                     "--timeout-ms covers the whole stream")
    ->excludes(call_cmd->get_option("--repeat"))
    ->excludes(call_cmd->get_option("--concurrency"));

  pool_options demo_opts;
  demo_opts.workers = 2;
  map_options map_opts;
  auto* map_cmd = app.add_subcommand("map", "Start a pool and call one tool for each line of "
                                            "JSON arguments; one JSON line out per line in");
  map_opts.pool.add_to(*map_cmd);
  map_cmd->add_option("--tool", map_opts.tool, "Tool to call")->required();
  auto* map_connect = map_cmd->add_option(
    "--connect", map_opts.connect,
    "Use a running tree's pool through its gateway (unix:/path or host:port) instead of "
    "starting one");
  map_cmd->add_option("--pool", map_opts.remote_pool, "With --connect: the tree's pool")
    ->needs(map_connect);
  map_cmd->add_option("--token-file", map_opts.token_file,
                      "With --connect: a file holding the gateway's token (mode 0600)")
    ->needs(map_connect);
  map_cmd->add_option("--ca-file", map_opts.ca_file,
                      "With --connect: PEM of the CA that signed the gateway's certificate")
    ->needs(map_connect);
  map_cmd->add_option("--args-file", map_opts.args_file,
                      "JSON lines of keyword arguments (default: standard input)");
  map_cmd->add_flag("--unordered,!--ordered", map_opts.unordered,
                    "Write results as they complete, with their index (default: in input "
                    "order)");
  map_cmd->add_option("--concurrency", map_opts.concurrency,
                      "Calls in flight (default: each worker's capacity plus its pipeline, "
                      "10 per process worker)")
    ->check(CLI::Range(1u, 1000000u));
  map_cmd->add_option("--chunk", map_opts.chunk,
                      "Items per call: a chunk's items run one after another in one call, "
                      "one slot and one deadline (default 64; 1: a call per item)")
    ->check(CLI::Range(1u, 100000u))
    ->capture_default_str();
  map_cmd->add_option("--timeout-ms", map_opts.timeout_ms, "Deadline of each call (a chunk)")
    ->capture_default_str()
    ->check(CLI::Range(std::int64_t{1}, std::int64_t{max_timeout.count()}));

  auto* demo_cmd = app.add_subcommand("demo", "Start a pool of the showcase adapter, call a "
                                              "few tools, print results and timings");
  demo_opts.add_to(*demo_cmd);

  std::string tree_file;
  auto* check_cmd = app.add_subcommand("check", "Validate a supervision tree file and print the "
                                                "tree");
  check_cmd->add_option("file", tree_file, "Tree file (TOML)")->required();
  std::string run_log_level;
  std::string run_log_format;
  auto* run_cmd = app.add_subcommand("run", "Start a supervision tree and serve until SIGINT or "
                                            "SIGTERM, then stop it in reverse order");
  run_cmd->add_option("file", tree_file, "Tree file (TOML)")->required();
  bool run_print_address = false;
  run_cmd->add_flag("--print-address", run_print_address,
                    "Print the gateway's address (unix:/... or host:port) alone on the first "
                    "line of stdout once the tree runs");
  run_cmd->add_option("--log-level", run_log_level,
                      "debug, info, warning, error or off (default: the file's "
                      "[logging] level, else info)");
  run_cmd->add_option("--log-format", run_log_format,
                      "text (logfmt) or json, one record per line (default: the file's "
                      "[logging] format, else text)");

  bool ls_json = false;
  auto* ls_cmd = app.add_subcommand("ls", "List the trees `snakepit run` serves on this machine "
                                          "(this user's): pid, tree, gateway address, file");
  ls_cmd->add_flag("--json", ls_json, "One JSON array instead of a table");

  inspect_options inspect_opts;
  auto* inspect_cmd = app.add_subcommand(
    "inspect", "Show the live state of a running `snakepit run`: per pool profile, workers, "
               "load, queue, requests, failures, restarts; per worker pid, age, RSS, Python");
  inspect_cmd->add_option("--pid", inspect_opts.attach.pid,
                          "The `snakepit run` to inspect (default: the only one running)");
  inspect_cmd->add_option("--url", inspect_opts.attach.url,
                          "Read a metrics endpoint's /status instead, e.g. "
                          "http://127.0.0.1:9464");
  inspect_cmd->add_flag("--json", inspect_opts.json, "Print the status document as JSON");
  inspect_cmd->add_option("--watch", inspect_opts.watch,
                          "Refresh every SECONDS until interrupted")
    ->expected(0, 1)
    ->default_str("2")
    ->check(CLI::PositiveNumber);
  attach_options diagnose_opts;
  bool diagnose_json = false;
  auto* diagnose_cmd = app.add_subcommand(
    "diagnose", "Report the machine, each running pool's utilisation and saturation, and "
                "what to change (pool size, profile, memory)");
  diagnose_cmd->add_option("--pid", diagnose_opts.pid,
                           "The `snakepit run` to diagnose (default: the only one running)");
  diagnose_cmd->add_option("--url", diagnose_opts.url, "Read a metrics endpoint's /status");
  diagnose_cmd->add_flag("--json", diagnose_json, "Print JSON");

  std::string libraries_python;
  bool libraries_json = false;
  auto* libraries_cmd = app.add_subcommand(
    "libraries", "Print which common Python libraries are thread-safe and release the GIL");
  libraries_cmd->add_option("--python", libraries_python, "Python interpreter");
  libraries_cmd->add_flag("--json", libraries_json, "Print JSON");

  auto* python_path_cmd = app.add_subcommand(
    "python-path", "Print the directory holding the snakepit_bridge package the workers import "
                   "(for PYTHONPATH, to test adapters with AdapterTestClient)");

  std::string doctor_python;
  std::vector<std::string> doctor_adapters, doctor_paths;
  auto* doctor_cmd = app.add_subcommand(
    "doctor", "Check the environment (Python, grpc, snakepit_bridge, adapters) and say how "
              "to fix what is wrong");
  doctor_cmd->add_option("--python", doctor_python, "Python interpreter");
  doctor_cmd->add_option("--adapter", doctor_adapters, "Adapter to try importing (repeatable)");
  doctor_cmd->add_option("--python-path", doctor_paths, "Extra import directory (repeatable)");

  // No command at all: a person asking what this is gets the usage, not an error document.
  if (argc <= 1) {
    std::cerr << app.help() << std::endl;
    return exit_usage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Usage errors are typed errors too, so scripts read them the same way.
    error_info info;
    info.kind = "bad_arguments";
    info.message = std::string{e.what()} + "; see snakepit --help or snakepit COMMAND --help";
    print_error(info);
    return exit_usage;
  }
  // A command asked for JSON: its errors are JSON too, terminal or not.
  if (call_opts.pool.json_errors || map_opts.pool.json_errors || demo_opts.json_errors || ls_json
      || inspect_opts.json || diagnose_json || libraries_json)
    errors_as_json() = true;
  if (ls_cmd->parsed())
    return run_list_trees(ls_json);
  if (call_cmd->parsed())
    return run_call(call_opts);
  if (map_cmd->parsed())
    return run_map(map_opts);
  if (demo_cmd->parsed())
    return run_demo(demo_opts);
  if (check_cmd->parsed())
    return run_check(tree_file);
  if (run_cmd->parsed())
    return run_tree(tree_file, run_log_level, run_log_format, run_print_address);
  if (inspect_cmd->parsed())
    return run_inspect(inspect_opts);
  if (diagnose_cmd->parsed())
    return run_diagnose(diagnose_opts, diagnose_json);
  if (libraries_cmd->parsed())
    return run_libraries(libraries_python, libraries_json);
  if (python_path_cmd->parsed()) {
    std::cout << python_package_dir() << std::endl;
    return exit_ok;
  }
  if (doctor_cmd->parsed())
    return run_doctor(doctor_python, doctor_adapters, doctor_paths);
  return exit_usage;
}
