// arrays_bench: n-d arrays and large payloads, shared memory against the same
// data inline in gRPC messages, in the same run, interleaved.
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 arrays_bench [--rounds 5] [--big-mib 64]
//        [--small-calls 2000] [--transfers 1000]
//
// Variants (one process worker per pool; every round runs each once, in turn):
//   sum-shm / sum-grpc     a float32 array of --big-mib MiB to array_sum, a double back
//   echo-shm / echo-grpc   the same array to echo and back (an identity round trip)
//   memcpy-2               the floor: two memcpy of the payload into warm buffers
//   small-array / small-bytes  1 KiB as an ndarray vs the same 1 KiB as bytes, one call at a
//                          time (both inline: below the threshold)
//   predict-ndarray / predict-lists  a digits-shaped model (bench/array_bench_adapter.py) over
//                          a 1797 x 64 float64 batch
// Then: the inline vs shared-memory cost by payload size (the threshold's basis), and host
// and worker RSS across --transfers 8 MiB round trips.

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "bench_actors.hpp"
#include "bench_common.hpp"
#include "snakepit/snakepit.hpp"

namespace {

using namespace bench;
using snakepit::ndarray;
using snakepit::value;

/// Resident set size of `pid` in MiB (/proc/PID/statm).
double rss_mib(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/statm"};
  long size = 0, resident = 0;
  in >> size >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE))
         / (1024.0 * 1024.0);
}

/// Milliseconds of one call (blocking); NaN and a message on failure.
double timed_call(caf::actor_system& sys, const snakepit::pool_actor& pool,
                  snakepit::execute_request req, value* result = nullptr,
                  double* python_us = nullptr) {
  caf::scoped_actor self{sys};
  auto t0 = clk::now();
  double ms = std::nan("");
  self->request(pool, std::chrono::seconds{120}, snakepit::execute_atom::value, std::move(req))
    .receive(
      [&](snakepit::execute_reply& r) {
        ms = ms_between(t0, clk::now());
        if (result != nullptr)
          *result = std::move(r.result);
        if (python_us != nullptr)
          *python_us = std::chrono::duration<double, std::micro>(r.python_wall).count();
      },
      [&](caf::error& e) {
        fmt::print(stderr, "call failed: {}\n", snakepit::describe(e).message);
      });
  return ms;
}

ndarray float_array(std::size_t count) {
  std::vector<float> xs(count);
  std::iota(xs.begin(), xs.end(), 0.0f);
  return ndarray{std::move(xs)};
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int rounds = int_option(argc, argv, "--rounds", 5);
  int big_mib = int_option(argc, argv, "--big-mib", 64);
  int small_calls = int_option(argc, argv, "--small-calls", 2000);
  int transfers = int_option(argc, argv, "--transfers", 1000);
  snakepit::set_log_level(snakepit::log_level::warning);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};

  auto big_bytes = static_cast<std::size_t>(big_mib) << 20;
  auto tweak = [&](snakepit::pool_config& pc) {
    pc.adapter = "array_bench_adapter.ArrayBenchAdapter";
    pc.python_path = {SNAKEPIT_BENCH_DIR};
    pc.request_timeout = std::chrono::seconds{120};
    pc.max_payload_bytes = 256 << 20;  // the lists form is large
  };
  auto predict_pool = start_showcase_pool(sys, "predict", 1, tweak);
  if (!predict_pool) {
    fmt::print(stderr, "the predict pool failed to start\n");
    return finish(1);
  }
  // The showcase's array tools (array_sum, echo) run in showcase pools.
  auto show_shm = start_showcase_pool(sys, "show-shm", 1, [&](snakepit::pool_config& pc) {
    pc.max_payload_bytes = static_cast<std::int64_t>(3 * big_bytes);
    pc.shm_bytes_max = static_cast<std::int64_t>(4 * big_bytes);
    pc.request_timeout = std::chrono::seconds{120};
  });
  auto show_grpc = start_showcase_pool(sys, "show-grpc", 1, [&](snakepit::pool_config& pc) {
    pc.max_payload_bytes = static_cast<std::int64_t>(3 * big_bytes);
    pc.shared_memory = false;
    pc.request_timeout = std::chrono::seconds{120};
  });
  auto show_all_shm = start_showcase_pool(sys, "show-all-shm", 1, [&](snakepit::pool_config& pc) {
    pc.shm_threshold = 0;
    pc.request_timeout = std::chrono::seconds{120};
  });
  if (!show_shm || !show_grpc || !show_all_shm) {
    fmt::print(stderr, "showcase pools failed to start\n");
    return finish(1);
  }

  auto big = float_array(big_bytes / sizeof(float));
  auto small = float_array(256);                       // 1 KiB
  auto small_raw = snakepit::bytes{std::string{small.bytes()}};
  std::vector<double> digits(1797 * 64);
  std::mt19937 gen{42};
  std::uniform_real_distribution<double> dist{0, 16};
  for (auto& x : digits)
    x = dist(gen);
  auto digits_array = *ndarray::from(digits, {1797, 64});
  value::list digits_lists;
  for (std::size_t r = 0; r < 1797; ++r) {
    value::list row;
    for (std::size_t c = 0; c < 64; ++c)
      row.emplace_back(digits[r * 64 + c]);
    digits_lists.emplace_back(std::move(row));
  }

  std::vector<std::string> names{"sum-shm",       "sum-grpc",        "echo-shm",
                                 "echo-grpc",     "memcpy-2",        "small-array",
                                 "small-bytes",   "predict-ndarray", "predict-lists"};
  std::vector<std::vector<double>> ms(names.size());
  std::vector<char> dst1(big_bytes), dst2(big_bytes);
  std::memset(dst1.data(), 1, big_bytes);
  std::memset(dst2.data(), 1, big_bytes);
  bool correct = true;
  std::vector<double> small_python_us[2];  // Python's own wall time per call
  auto per_call = [&](const snakepit::pool_actor& pool, auto make, int n) {
    auto t0 = clk::now();
    for (int i = 0; i < n; ++i)
      timed_call(sys, pool, make());
    return ms_between(t0, clk::now()) / n;
  };
  auto round = [&](bool keep) {
    std::vector<double> got(names.size());
    value out;
    got[0] = timed_call(sys, *show_shm, snakepit::make_request("array_sum", {{"value", big}}), &out);
    got[1] = timed_call(sys, *show_grpc, snakepit::make_request("array_sum", {{"value", big}}));
    got[2] = timed_call(sys, *show_shm, snakepit::make_request("echo", {{"value", big}}), &out);
    correct = correct && out == value(big);
    got[3] = timed_call(sys, *show_grpc, snakepit::make_request("echo", {{"value", big}}), &out);
    correct = correct && out == value(big);
    auto t0 = clk::now();
    std::memcpy(dst1.data(), big.bytes().data(), big_bytes);
    std::memcpy(dst2.data(), dst1.data(), big_bytes);
    got[4] = ms_between(t0, clk::now());
    // Interleaved call by call, so both see the same machine.
    std::vector<double> array_ms, bytes_ms, array_py, bytes_py;
    for (int i = 0; i < small_calls; ++i) {
      // Alternating which goes first, so neither always follows the other.
      for (int k = 0; k < 2; ++k) {
        double py = 0;
        if ((i + k) % 2 == 0) {
          array_ms.push_back(timed_call(
            sys, *show_shm, snakepit::make_request("echo", {{"value", small}}), nullptr, &py));
          array_py.push_back(py);
        } else {
          bytes_ms.push_back(timed_call(
            sys, *show_shm, snakepit::make_request("echo", {{"value", small_raw}}), nullptr, &py));
          bytes_py.push_back(py);
        }
      }
    }
    got[5] = median(array_ms);
    got[6] = median(bytes_ms);
    small_python_us[0].push_back(median(array_py));
    small_python_us[1].push_back(median(bytes_py));
    got[7] = timed_call(sys, *predict_pool,
                        snakepit::make_request("predict", {{"rows", digits_array}}));
    got[8] = timed_call(sys, *predict_pool,
                        snakepit::make_request("predict", {{"rows", digits_lists}}));
    if (keep)
      for (std::size_t k = 0; k < names.size(); ++k)
        ms[k].push_back(got[k]);
  };

  fmt::print("arrays_bench: {} rounds; a {} MiB float32 array, {} small calls per round\n",
             rounds, big_mib, small_calls);
  round(false);  // warm-up: numpy imported, pages touched
  for (int r = 0; r < rounds; ++r)
    round(true);
  auto med = [&](std::size_t k) { return median(ms[k]); };
  fmt::print("\nPer variant: medians over {} rounds (ms per call)\n", rounds);
  table t({"variant", "ms"});
  for (std::size_t k = 0; k < names.size(); ++k)
    t.add({names[k], fixed(med(k), k == 5 || k == 6 ? 3 : 1)});
  t.print();
  fmt::print("1 KiB echo, Python's own wall time per call: array {:.1f} us, bytes {:.1f} us\n",
             median(small_python_us[0]), median(small_python_us[1]));

  // Inline vs shared memory by size: echo of bytes, one call at a time.
  fmt::print("\nEcho of bytes by size (median ms per call): inline gRPC vs shared memory\n");
  table by_size({"bytes", "inline", "shm", "shm / inline"});
  for (std::size_t size : {16u << 10, 64u << 10, 128u << 10, 256u << 10, 1u << 20, 4u << 20}) {
    auto payload = snakepit::bytes{std::string(size, 'x')};
    int n = size >= (1u << 20) ? 40 : 200;
    std::vector<double> inl, shm;
    for (int r = 0; r < 3; ++r) {
      inl.push_back(per_call(*show_grpc,
                             [&] { return snakepit::make_request("echo", {{"value", payload}}); },
                             n));
      shm.push_back(per_call(*show_all_shm,
                             [&] { return snakepit::make_request("echo", {{"value", payload}}); },
                             n));
    }
    by_size.add({std::to_string(size), fixed(median(inl), 3), fixed(median(shm), 3),
                 fixed(median(shm) / median(inl), 2)});
    result_line("arrays", fmt::format("echo_inline_ms_{}", size), median(inl));
    result_line("arrays", fmt::format("echo_shm_ms_{}", size), median(shm));
  }
  by_size.print();

  // Memory across many large transfers.
  auto worker_pid = pool_status_of(sys, *show_shm).workers.front().pid;
  auto transfer = float_array((8u << 20) / sizeof(float));
  for (int i = 0; i < 20; ++i)  // settle
    timed_call(sys, *show_shm, snakepit::make_request("echo", {{"value", transfer}}));
  double host0 = rss_mib(::getpid()), worker0 = rss_mib(worker_pid);
  for (int i = 0; i < transfers; ++i)
    timed_call(sys, *show_shm, snakepit::make_request("echo", {{"value", transfer}}));
  double host1 = rss_mib(::getpid()), worker1 = rss_mib(worker_pid);
  fmt::print("\nRSS across {} round trips of 8 MiB through shared memory: host {:.1f} -> {:.1f} "
             "MiB, worker {:.1f} -> {:.1f} MiB\n",
             transfers, host0, host1, worker0, worker1);

  double sum_ratio = med(1) / med(0);
  double echo_ratio = med(3) / med(2);
  double floor_ratio = med(2) / med(4);
  double small_ratio = med(5) / med(6);
  double predict_ratio = med(8) / med(7);
  double growth = std::max(host1 - host0, worker1 - worker0);
  fmt::print("\nRatios of medians\n");
  table rt({"ratio", "value", "target", "verdict"});
  rt.add({"sum: grpc / shm", fixed(sum_ratio, 1), ">= 10", verdict(sum_ratio >= 10)});
  rt.add({"echo: grpc / shm", fixed(echo_ratio, 1), ">= 10", verdict(echo_ratio >= 10)});
  rt.add({"echo shm / two memcpy", fixed(floor_ratio, 2), "report (aim <= 2)", "-"});
  rt.add({"1 KiB: array / bytes", fixed(small_ratio, 3), "<= 1.05", verdict(small_ratio <= 1.05)});
  rt.add({"predict: lists / ndarray", fixed(predict_ratio, 1), "report (expect >= 20)", "-"});
  rt.add({"RSS growth after transfers (MiB)", fixed(growth, 1), "<= 64", verdict(growth <= 64)});
  rt.add({"results equal what was sent", correct ? "yes" : "no", "yes", verdict(correct)});
  rt.print();
  result_line("arrays", "sum_shm_ms", med(0));
  result_line("arrays", "sum_grpc_ms", med(1));
  result_line("arrays", "echo_shm_ms", med(2));
  result_line("arrays", "echo_grpc_ms", med(3));
  result_line("arrays", "memcpy2_ms", med(4));
  result_line("arrays", "sum_grpc_over_shm", sum_ratio);
  result_line("arrays", "echo_grpc_over_shm", echo_ratio);
  result_line("arrays", "echo_shm_over_memcpy2", floor_ratio);
  result_line("arrays", "small_array_over_bytes", small_ratio);
  result_line("arrays", "predict_lists_over_ndarray", predict_ratio);
  result_line("arrays", "rss_growth_mib", growth);
  for (auto* p : {&*predict_pool, &*show_shm, &*show_grpc, &*show_all_shm})
    stop_pool_within(sys, *p, std::chrono::seconds{20});
  return finish(correct ? 0 : 1);
}
