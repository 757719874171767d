#include "map.hpp"

#include "gateway_pool.hpp"
#include "snakepit/observability/token_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <deque>
#include <functional>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "latency_histogram.hpp"
#include "progress.hpp"

namespace snakepit::cli {

namespace {

using item_atom = caf::atom_constant<caf::atom("mapitem")>;
using input_end_atom = caf::atom_constant<caf::atom("mapeof")>;
using tick_atom = caf::atom_constant<caf::atom("maptick")>;

/// How far input may run ahead of output, in multiples of the calls in flight.
constexpr std::uint64_t read_ahead_factor = 4;

/// Calls in flight to a pool behind a gateway when --concurrency is not given.
constexpr std::uint32_t remote_in_flight = 16;

/// Shared between the reading thread and the driver actor: how far output got.
struct flow {
  std::mutex mtx;
  std::condition_variable cv;
  std::uint64_t written = 0;
};

struct driver_state {
  std::map<std::uint64_t, std::string> pending;  // ordered output not yet written
  std::uint64_t next_to_write = 0;
  std::uint64_t total = ~std::uint64_t{0};  // known at end of input
  map_summary stats;  // the counts map_calls keeps, for the same job
  latency_histogram latency;
  bool progress = false;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  /// Starts queued items while fewer than the limit run. In the state, not in
  /// a shared_ptr its own lambdas capture: it goes with the actor.
  std::function<void()> start_next;
};

double micros_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
    .count();
}

/// The closing line: throughput, latency, failures by kind.
std::string summary_text(const driver_state& s) {
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - s.t0).count();
  auto kinds = failures_by_kind(s.stats.failures);
  return fmt::format("map: {} items in {:.3f} s, {:.0f} items/s, latency p50 {:.2f} ms p99 "
                     "{:.2f} ms, {} failed{}",
                     s.stats.items, secs, static_cast<double>(s.stats.items) / std::max(secs, 1e-9),
                     s.latency.quantile(0.5) / 1000, s.latency.quantile(0.99) / 1000,
                     s.stats.failed, kinds);
}

/// Output complete: hand the summary to the waiting command and end.
void finish(caf::stateful_actor<driver_state>* self, const caf::actor& reply_to) {
  auto& s = self->state;
  std::cout.flush();
  if (s.progress)
    std::cerr << '\n';
  self->send(reply_to, s.stats.failed, summary_text(s));
  self->quit();
}

} // namespace

int run_map(const map_options& opts) {
  if (!apply_log_level(opts.pool.log_level))
    return exit_usage;
  std::ifstream file;
  std::istream* in = &std::cin;
  if (!opts.args_file.empty() && opts.args_file != "-") {
    file.open(opts.args_file);
    if (!file) {
      print_error("bad_arguments", "--args-file: cannot open " + opts.args_file);
      return exit_usage;
    }
    in = &file;
  }
  host h;
  auto cfg = opts.pool.to_config("map");
  cfg.request_timeout = std::chrono::milliseconds{std::max<std::int64_t>(1, opts.timeout_ms)};
  auto capacity = cfg.size * (opts.pool.profile == "thread" ? opts.pool.threads : 1u);
  // Enough calls for every worker to run one and have its pipeline full, so
  // short calls travel in batches (process profile); thread profile: twice
  // the capacity.
  auto queued_per_worker = opts.pool.profile == "thread" ? opts.pool.threads : cfg.pipeline_depth;
  auto in_flight = opts.concurrency > 0 ? opts.concurrency
                                        : capacity + cfg.size * std::max(1u, queued_per_worker);
  bool remote = !opts.connect.empty();
  if (remote && opts.concurrency == 0)
    in_flight = remote_in_flight;  // the remote pool's size is not known here
  auto window = read_ahead_factor * in_flight * std::max<std::uint32_t>(1, opts.chunk);
  std::optional<pool_actor> pool;
  if (remote) {
    if (opts.remote_pool.empty()) {
      print_error("bad_arguments", "--connect needs --pool NAME: the pool of the running tree "
                                   "to call (`snakepit ls` shows the trees)");
      return exit_usage;
    }
    gateway_address where{opts.connect, opts.remote_pool, {}, opts.ca_file};
    if (!opts.token_file.empty()) {
      auto token = read_token_file(opts.token_file, "--token-file");
      if (!token) {
        print_error(token.error());
        return exit_usage;
      }
      where.token = std::move(*token);
    }
    auto proxy = connect_gateway_pool(*h.sys, where);
    if (!proxy) {
      print_error(proxy.error());
      return exit_usage;
    }
    pool = *proxy;
  } else {
    pool = h.start(cfg);
  }
  if (!pool)
    return exit_failed;
  auto shared = std::make_shared<flow>();
  caf::scoped_actor waiter{*h.sys};
  auto timeout = std::chrono::milliseconds{opts.timeout_ms};
  auto driver = h.sys->spawn([&opts, p = *pool, timeout, shared, reply_to = caf::actor{waiter},
                              in_flight](caf::stateful_actor<driver_state>* self)
                               -> caf::behavior {
    auto& st = self->state;
    st.progress = ::isatty(2) != 0;
    // Items wait here until a slot is free; at most `window` of them exist.
    auto queue = std::make_shared<std::deque<std::pair<std::uint64_t, value::map>>>();
    auto running = std::make_shared<std::uint32_t>(0);
    auto emit = [self, &opts, shared, reply_to](std::uint64_t index, std::string line) {
      auto& s = self->state;
      auto flush_one = [&](const std::string& text) {
        std::cout << text << '\n';
        ++s.next_to_write;
      };
      if (opts.unordered) {
        flush_one(line);
      } else {
        s.pending.emplace(index, std::move(line));
        for (auto i = s.pending.begin(); i != s.pending.end() && i->first == s.next_to_write;
             i = s.pending.erase(i))
          flush_one(i->second);
      }
      {
        std::lock_guard<std::mutex> guard{shared->mtx};
        shared->written = s.next_to_write;
      }
      shared->cv.notify_one();
      if (s.next_to_write == s.total)
        finish(self, reply_to);
    };
    auto fail_item = [self, &opts, emit](std::uint64_t index, const error_info& info) {
      auto& s = self->state;
      ++s.stats.items;
      ++s.stats.failed;
      ++s.stats.failures[info.kind];
      auto line = info.to_json();
      if (opts.unordered)
        line = fmt::format("{{\"index\": {}, {}", index, line.substr(1));
      emit(index, std::move(line));
    };
    self->state.start_next = [self, &opts, p, timeout, queue, running, in_flight, emit,
                              fail_item] {
      auto chunk = std::max<std::uint32_t>(1, opts.chunk);
      while (*running < in_flight && !queue->empty()) {
        // Whatever is queued, up to a chunk: one map request (no waiting for more).
        auto req = make_request(opts.tool, {}, timeout);
        std::vector<std::uint64_t> indexes;
        while (!queue->empty() && indexes.size() < chunk) {
          indexes.push_back(queue->front().first);
          req.items.push_back(std::move(queue->front().second));
          queue->pop_front();
        }
        bool map = chunk > 1;
        if (!map) {
          req.arguments = std::move(req.items.front());
          req.items.clear();
        }
        ++*running;
        auto sent = std::chrono::steady_clock::now();
        auto ok_line = [&opts](std::uint64_t index, value& result) {
          auto line = result.to_json();
          if (opts.unordered)
            line = fmt::format("{{\"index\": {}, \"result\": {}}}", index, line);
          return line;
        };
        self->request(p, caf::infinite, execute_atom::value, std::move(req))
          .then(
            [self, map, indexes, sent, running, emit, fail_item,
             ok_line](execute_reply& reply) {
              auto& s = self->state;
              auto us = micros_since(sent);
              --*running;
              if (!map) {
                ++s.stats.items;
                s.latency.add(us);
                emit(indexes.front(), ok_line(indexes.front(), reply.result));
              } else {
                // The worker answers a map with one outcome per item, or fails it.
                for (std::size_t i = 0; i < indexes.size(); ++i) {
                  s.latency.add(us);
                  if (reply.items[i].error) {
                    fail_item(indexes[i], describe(reply.items[i].error));
                  } else {
                    ++s.stats.items;
                    emit(indexes[i], ok_line(indexes[i], reply.items[i].result));
                  }
                }
              }
              self->state.start_next();
            },
            [self, indexes, sent, running, fail_item](caf::error& err) {
              auto us = micros_since(sent);
              --*running;
              auto info = describe(err);
              for (auto index : indexes) {
                self->state.latency.add(us);
                fail_item(index, info);
              }
              self->state.start_next();
            });
      }
    };
    if (st.progress)
      self->delayed_send(self, std::chrono::milliseconds{250}, tick_atom::value);
    return {
      [self, queue](item_atom, std::uint64_t index, value::map& args) {
        queue->emplace_back(index, std::move(args));
        self->state.start_next();
      },
      [fail_item](item_atom, std::uint64_t index, const std::string& problem) {
        error_info info;
        info.kind = "bad_arguments";
        info.message = problem;
        fail_item(index, info);
      },
      [self, reply_to](input_end_atom, std::uint64_t total) {
        self->state.total = total;
        if (self->state.next_to_write == total)
          finish(self, reply_to);
      },
      [self](tick_atom) {
        auto& s = self->state;
        auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - s.t0)
                      .count();
        std::cerr << fmt::format("\r{} items, {:.0f}/s, {} failed   ", s.stats.items,
                                 static_cast<double>(s.stats.items) / std::max(secs, 1e-9),
                                 s.stats.failed)
                  << std::flush;
        self->delayed_send(self, std::chrono::milliseconds{250}, tick_atom::value);
      },
    };
  });
  // Read on this thread, never more than `window` items ahead of the output.
  std::uint64_t index = 0;
  std::uint64_t line_no = 0;
  std::string line;
  while (std::getline(*in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;  // blank lines are not items
    {
      std::unique_lock<std::mutex> guard{shared->mtx};
      shared->cv.wait(guard, [&] { return index - shared->written < window; });
    }
    auto args = value::from_json(line);
    if (args && args->is_map())
      caf::anon_send(driver, item_atom::value, index, std::move(*args->if_map()));
    else
      caf::anon_send(driver, item_atom::value, index,
                     fmt::format("line {}: {}", line_no,
                                 args ? std::string{"not a JSON object of keyword arguments"}
                                      : args.error().message));
    ++index;
  }
  caf::anon_send(driver, input_end_atom::value, index);
  std::uint64_t failed = 0;
  std::string text;
  waiter->receive([&](std::uint64_t n, std::string& summary) {
    failed = n;
    text = std::move(summary);
  });
  if (remote)
    caf::anon_send_exit(*pool, caf::exit_reason::user_shutdown);
  else
    stop_pool(*h.sys, *pool);
  log_line(text);
  return failed == 0 ? exit_ok : exit_failed;
}

} // namespace snakepit::cli
