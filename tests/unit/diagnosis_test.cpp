// What `diagnose` recommends for synthesized pools, and the machine figures.

#include <filesystem>
#include <fstream>
#include <optional>

#include <unistd.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "snakepit/observability/diagnosis.hpp"

using namespace snakepit;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t mib = 1ll << 20;
constexpr std::int64_t gib = 1ll << 30;

machine_info machine(unsigned cores = 8, std::int64_t total = 16 * gib,
                     std::int64_t available = 12 * gib) {
  machine_info m;
  m.cores = cores;
  m.memory_total_bytes = static_cast<std::uint64_t>(total);
  m.memory_available_bytes = static_cast<std::uint64_t>(available);
  m.kernel = "Linux test";
  return m;
}

/// A ready process-profile pool whose `size` workers each served `calls_each`
/// calls, in tools for `utilisation` of their `age`, with that CPU share.
pool_status pool(std::string name, std::uint32_t size, double utilisation,
                 std::uint64_t calls_each = 100, double cpu_share = 0.9,
                 std::int64_t rss = 100 * mib, caf::timespan age = 600s) {
  pool_status s;
  s.name = std::move(name);
  s.state = "ready";
  s.size = s.ready = s.capacity = size;
  s.uptime = age;
  for (std::uint32_t i = 0; i < size; ++i) {
    worker_status w;
    w.id = s.name + "/w-" + std::to_string(i);
    w.pid = static_cast<std::int32_t>(1000 + i);
    w.state = "ready";
    w.profile = "process";
    w.age = age;
    w.python_wall_total = caf::timespan{static_cast<caf::timespan::rep>(
      static_cast<double>(age.count()) * utilisation)};
    w.python_cpu_total = caf::timespan{static_cast<caf::timespan::rep>(
      static_cast<double>(w.python_wall_total.count()) * cpu_share)};
    w.served = calls_each;
    w.rss_bytes = rss;
    s.workers.push_back(w);
  }
  s.served = calls_each * size;
  return s;
}

/// A copy: the diagnoses in these tests are often temporaries.
std::optional<recommendation> find(const std::vector<recommendation>& xs,
                                   const std::string& rule) {
  for (auto& r : xs)
    if (r.rule == rule)
      return r;
  return std::nullopt;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

pool_diagnosis only_pool(const machine_info& m, const pool_status& s) {
  auto d = diagnose(m, {s});
  REQUIRE(d.pools.size() == 1);
  return d.pools.front();
}

} // namespace

TEST_CASE("a pool that rejects requests is too small, with a concrete size") {
  auto s = pool("ml", 4, 0.8, 1000);
  s.queue_full = 300;
  s.queue_timeouts = 100;
  s.failed = 400;  // rejections count as failed calls
  auto d = only_pool(machine(), s);
  CHECK(d.utilisation == doctest::Approx(0.8));
  CHECK(d.rejected == 400);
  CHECK(d.saturation == doctest::Approx(400.0 / 4400));
  CHECK(d.rss_total_bytes == 400 * mib);
  CHECK(d.rss_per_worker_bytes == 100 * mib);
  auto r = find(d.recommendations, "pool_too_small");
  REQUIRE(r);
  // demand 0.8 * 4400 / 4000 = 0.88; 4 * 0.88 / 0.7 = 5.03 -> 6.
  CHECK(r->action == "set size = 6 in [pools.ml]");
  CHECK(r->level == recommendation::severity::critical);  // 9% rejected
  CHECK(has(r->why, "400 of 4400 requests rejected"));
  CHECK(d.recommendations.front().rule == "pool_too_small");  // critical first
}

TEST_CASE("a busy pool with a queue is too small (a warning without rejections)") {
  auto s = pool("ml", 4, 0.9, 1000);
  s.queued = 5;
  auto d = only_pool(machine(), s);
  auto r = find(d.recommendations, "pool_too_small");
  REQUIRE(r);
  CHECK(r->level == recommendation::severity::warning);
  CHECK(r->action == "set size = 6 in [pools.ml]");  // 4 * 0.9 / 0.7 = 5.1
  // Busy without a queue is fine.
  s.queued = 0;
  CHECK(!find(only_pool(machine(), s).recommendations, "pool_too_small"));
}

TEST_CASE("growing a CPU-bound process pool is capped by the cores") {
  auto s = pool("cpu", 3, 0.95, 1000);
  s.queued = 10;
  auto r = find(only_pool(machine(4), s).recommendations, "pool_too_small");
  REQUIRE(r);
  CHECK(r->action == "set size = 4 in [pools.cpu]");  // wanted 5
  CHECK(has(r->why, "needs 5 workers"));
  CHECK(has(r->why, "capped by the 4 cores"));
  // Already at the cores: it cannot grow.
  auto full = pool("cpu", 4, 0.95, 1000);
  full.queued = 10;
  r = find(only_pool(machine(4), full).recommendations, "pool_too_small");
  REQUIRE(r);
  CHECK(has(r->action, "keep size = 4 in [pools.cpu]: the pool cannot grow"));
  // A cgroup quota of 2.5 CPUs counts as 3 cores.
  auto limited = machine(8);
  limited.cgroup_cpu_limit = 2.5;
  r = find(only_pool(limited, s).recommendations, "pool_too_small");
  REQUIRE(r);
  CHECK(has(r->why, "capped by the 3 cores"));
  // Calls that mostly wait are not capped by the cores.
  auto waiting = pool("io", 3, 0.95, 1000, 0.1);
  waiting.queued = 10;
  r = find(only_pool(machine(4), waiting).recommendations, "pool_too_small");
  REQUIRE(r);
  CHECK(r->action == "set size = 5 in [pools.io]");
}

TEST_CASE("growing a pool is capped by the memory headroom") {
  // 10 GiB, 3 GiB available, 2 GiB kept free: room for one more 1 GiB worker.
  auto s = pool("ml", 4, 0.95, 1000, 0.9, gib);
  s.queued = 10;
  auto d = diagnose(machine(64, 10 * gib, 3 * gib), {s});
  auto r = find(d.pools.front().recommendations, "pool_too_small");
  REQUIRE(r);
  CHECK(r->action == "set size = 5 in [pools.ml]");
  CHECK(has(r->why, "needs 6 workers"));
  CHECK(has(r->why, "capped by memory"));
  CHECK(has(r->why, "fits 1 more worker of 1.0 GiB"));
  CHECK(!find(d.recommendations, "memory_headroom"));  // 30% free
}

TEST_CASE("an idle pool is too large, with the memory a smaller size frees") {
  auto d = only_pool(machine(), pool("idle", 8, 0.05, 200));
  auto r = find(d.recommendations, "pool_too_large");
  REQUIRE(r);
  CHECK(r->level == recommendation::severity::info);
  // 8 * 0.05 / 0.7 = 0.57 -> 1 worker; 7 * 100 MiB freed.
  CHECK(r->action == "set size = 1 in [pools.idle] (frees about 700.0 MiB)");
  // One worker is never too many.
  CHECK(!find(only_pool(machine(), pool("one", 1, 0.05, 200)).recommendations,
              "pool_too_large"));
}

TEST_CASE("a short or quiet history is not enough to judge the size") {
  auto young = only_pool(machine(), pool("young", 8, 0.05, 200, 0.9, 100 * mib, 30s));
  REQUIRE(find(young.recommendations, "not_enough_traffic"));
  CHECK(has(find(young.recommendations, "not_enough_traffic")->why,
            "judged after at least 60 s up and 100 calls; this pool has been up 30 s and "
            "answered 1600 calls"));
  CHECK(!find(young.recommendations, "pool_too_large"));
  auto quiet = only_pool(machine(), pool("quiet", 8, 0.05, 10));  // 80 calls
  auto r = find(quiet.recommendations, "not_enough_traffic");
  REQUIRE(r);
  CHECK(r->level == recommendation::severity::info);
  CHECK(has(r->what, "too early to judge the size"));
  CHECK(!find(quiet.recommendations, "ok"));
}

TEST_CASE("the profile advice shows when it differs from the pool's profile") {
  // Process workers whose tools mostly wait: the thread profile.
  auto d = only_pool(machine(), pool("io", 4, 0.5, 100, 0.1));
  auto r = find(d.recommendations, "profile");
  REQUIRE(r);
  CHECK(r->level == recommendation::severity::warning);
  CHECK(has(r->why, "waiting"));
  CHECK(r->action
        == "set profile = \"thread\", threads_per_worker = 4 and size = 1 in [pools.io] (the "
           "same 4 slots; the adapter must derive from ThreadSafeAdapter)");
  // A thread worker that burns a whole CPU while each call gets a small share
  // of it: the calls queue for the GIL; processes, at most one per core.
  pool_status t;
  t.name = "gil";
  t.state = "ready";
  t.size = t.ready = 1;
  t.capacity = 8;
  t.uptime = 100s;
  worker_status w;
  w.id = "gil/w-0";
  w.profile = "thread";
  w.capacity = 8;
  w.age = 100s;
  w.python_wall_total = 400s;
  w.python_cpu_total = 95s;
  w.served = 500;
  t.workers.push_back(w);
  t.served = 500;
  r = find(only_pool(machine(2), t).recommendations, "profile");
  REQUIRE(r);
  CHECK(has(r->why, "GIL"));
  CHECK(r->action == "set profile = \"process\" and size = 2 in [pools.gil]");
  // Matching profiles, or too few calls: nothing to say.
  CHECK(!find(only_pool(machine(), pool("cpu", 4, 0.5, 100, 0.9)).recommendations, "profile"));
  CHECK(!find(only_pool(machine(), pool("io", 4, 0.5, 2, 0.1)).recommendations, "profile"));
}

TEST_CASE("little memory headroom is a warning, very little is critical") {
  auto s = pool("ml", 4, 0.5, 100, 0.9, gib);
  auto warn = diagnose(machine(8, 10 * gib, 3 * gib / 2), {s});
  auto r = find(warn.recommendations, "memory_headroom");
  REQUIRE(r);
  CHECK(r->level == recommendation::severity::warning);
  CHECK(has(r->why, "1.5 GiB of 10.0 GiB memory free (15%)"));
  // 0.5 GiB short of 20%: one 1 GiB worker fewer.
  CHECK(has(r->action, "set size = 3 in [pools.ml] (frees about 1.0 GiB)"));
  auto crit = diagnose(machine(8, 10 * gib, 3 * gib / 10), {s});
  r = find(crit.recommendations, "memory_headroom");
  REQUIRE(r);
  CHECK(r->level == recommendation::severity::critical);
  CHECK(worst(crit) == recommendation::severity::critical);
  CHECK(!find(diagnose(machine(), {s}).recommendations, "memory_headroom"));
}

TEST_CASE("memory headroom counts the cgroup limit and the workers not running yet") {
  // 60 GiB available on the machine, but the container may use 4 GiB and the
  // workers hold 3.6 GiB of it.
  auto s = pool("ml", 4, 0.5, 100, 0.9, 900 * mib);
  auto m = machine(8, 64 * gib, 60 * gib);
  m.cgroup_memory_limit_bytes = 4 * gib;
  auto r = find(diagnose(m, {s}).recommendations, "memory_headroom");
  REQUIRE(r);
  CHECK(has(r->why, "of 4.0 GiB memory free (12%)"));
  // 8 configured, 4 running at 1 GiB: the other 4 need 4 GiB of the 5 available.
  auto half = pool("half", 4, 0.5, 100, 0.9, gib);
  half.size = 8;
  auto d = diagnose(machine(8, 10 * gib, 5 * gib), {half});
  r = find(d.recommendations, "memory_headroom");
  REQUIRE(r);
  CHECK(has(r->why, "the 4 workers not running yet will need about 4.0 GiB more"));
  CHECK(find(d.pools.front().recommendations, "not_ready"));
}

TEST_CASE("one worker far above the median RSS suggests worker_max_rss_bytes") {
  auto s = pool("leaky", 4, 0.5, 100);
  s.workers[0].rss_bytes = 110 * mib;
  s.workers[2].rss_bytes = 400 * mib;
  auto d = only_pool(machine(), s);
  CHECK(d.rss_per_worker_bytes == 100 * mib);  // the median, not the mean
  auto r = find(d.recommendations, "rss_outlier");
  REQUIRE(r);
  CHECK(r->level == recommendation::severity::warning);
  CHECK(has(r->why, "leaky/w-2 (pid 1002) has 400.0 MiB resident"));
  CHECK(has(r->action, "set worker_max_rss_bytes = 262144000 in [pools.leaky]"));  // 250 MiB
  s.recycles["memory"] = 3;
  r = find(only_pool(machine(), s).recommendations, "rss_outlier");
  REQUIRE(r);
  CHECK(has(r->action, "it is on already, with 3 memory recycles: lower it"));
  // 1.5x the median is no outlier; neither is 2x of a few MiB.
  s.workers[2].rss_bytes = 150 * mib;
  CHECK(!find(only_pool(machine(), s).recommendations, "rss_outlier"));
  auto small = pool("small", 2, 0.5, 100, 0.9, 10 * mib);
  small.workers[1].rss_bytes = 30 * mib;
  CHECK(!find(only_pool(machine(), small).recommendations, "rss_outlier"));
}

TEST_CASE("crashes and deadline kills point at the logs and at the timeout") {
  auto s = pool("flaky", 2, 0.5, 100);
  s.crashes = 2;
  s.replacements = 1;
  auto d = only_pool(machine(), s);
  auto crash = find(d.recommendations, "crashes");
  REQUIRE(crash);
  CHECK(crash->level == recommendation::severity::warning);
  CHECK(has(crash->action, "tracebacks"));
  auto kills = find(d.recommendations, "replacements");
  REQUIRE(kills);
  CHECK(kills->level == recommendation::severity::info);
  s.replacements = 5;
  kills = find(only_pool(machine(), s).recommendations, "replacements");
  REQUIRE(kills);
  CHECK(kills->level == recommendation::severity::warning);
  CHECK(has(kills->action, "raise request_timeout in [pools.flaky]"));
  CHECK(has(kills->action, "ctx.time_left()"));
}

TEST_CASE("a pool with fewer ready workers than its size") {
  auto s = pool("p", 4, 0.5, 100);
  s.ready = 2;
  auto r = find(only_pool(machine(), s).recommendations, "not_ready");
  REQUIRE(r);
  CHECK(r->level == recommendation::severity::warning);
  CHECK(has(r->why, "2 of 4 workers ready"));
  s.state = "failed";
  CHECK(find(only_pool(machine(), s).recommendations, "not_ready")->level
        == recommendation::severity::critical);
  s.state = "starting";
  CHECK(find(only_pool(machine(), s).recommendations, "not_ready")->level
        == recommendation::severity::info);
}

TEST_CASE("more busy CPU-bound processes than cores") {
  auto cpu = pool("cpu", 4, 0.5, 100);
  for (auto& w : cpu.workers)
    w.in_flight = 1;
  auto io = pool("io", 4, 0.5, 100, 0.1);
  for (auto& w : io.workers)
    w.in_flight = 1;
  auto d = diagnose(machine(2), {cpu, io});
  auto r = find(d.recommendations, "cpu_oversubscribed");
  REQUIRE(r);
  CHECK(has(r->why, "4 worker processes busy on 2 cores (cpu 4)"));  // io waits: not counted
  CHECK(!find(diagnose(machine(2), {io}).recommendations, "cpu_oversubscribed"));
}

TEST_CASE("a healthy pool needs no change") {
  auto d = diagnose(machine(), {pool("fine", 4, 0.5, 100)});
  CHECK(d.recommendations.empty());
  REQUIRE(d.pools.front().recommendations.size() == 1);
  auto& r = d.pools.front().recommendations.front();
  CHECK(r.rule == "ok");
  CHECK(r.what == "no change needed");
  CHECK(worst(d) == recommendation::severity::info);
  CHECK(find(diagnose(machine(), {}).recommendations, "no_pools"));
}

TEST_CASE("text and JSON renderings, critical first") {
  auto s = pool("ml", 4, 0.8, 1000);
  s.queue_full = 400;
  s.failed = 400;
  s.crashes = 1;
  auto d = diagnose(machine(), {s});
  auto text = render_text(d);
  CHECK(has(text, "machine: 8 cores, memory 12.0 GiB available of 16.0 GiB, Linux test"));
  CHECK(has(text, "pool ml: process, 4 of 4 workers ready, 4400 calls; utilisation 80%"));
  CHECK(text.find("[critical] pool too small") < text.find("[warning] workers crashed"));
  CHECK(has(text, "-> set size = 6 in [pools.ml]"));
  auto j = nlohmann::json::parse(render_json(d));
  CHECK(j["machine"]["cores"] == 8);
  CHECK(j["machine"]["cgroup_memory_limit_bytes"].is_null());
  CHECK(j["worst"] == "critical");
  CHECK(j["pools"][0]["pool"] == "ml");
  CHECK(j["pools"][0]["rejected"] == 400);
  CHECK(j["pools"][0]["recommendations"][0]["rule"] == "pool_too_small");
  CHECK(j["pools"][0]["recommendations"][0]["level"] == "critical");
}

TEST_CASE("utilisation counts from when the pool was ready, not from each worker's ready") {
  // Four workers ready 30 s apart in a slow start; calls ran on all of them
  // since the pool was ready (the youngest's age): busy all the time.
  auto s = pool("ml", 4, 0.0);
  caf::timespan ages[] = {100s, 90s, 80s, 70s};
  for (std::size_t i = 0; i < 4; ++i) {
    s.workers[i].age = ages[i];
    s.workers[i].python_wall_total = 70s;
    s.workers[i].python_cpu_total = 60s;
  }
  CHECK(only_pool(machine(), s).utilisation == doctest::Approx(1.0));
  // A replaced worker hides when the pool was ready: each worker's own age.
  s.crashes = 1;
  CHECK(only_pool(machine(), s).utilisation == doctest::Approx(280.0 / 340.0));
}

TEST_CASE("this machine's figures are sane") {
  auto m = read_machine_info();
  CHECK(m.cores >= 1);
  CHECK(m.memory_total_bytes > 0);
  CHECK(m.memory_available_bytes <= m.memory_total_bytes);
  CHECK(!m.kernel.empty());
  if (m.cgroup_memory_limit_bytes)
    CHECK(*m.cgroup_memory_limit_bytes < m.memory_total_bytes);
}

TEST_CASE("cgroup limits are read along the cgroup path, v2 then v1") {
  namespace fs = std::filesystem;
  auto root = fs::temp_directory_path() / ("snakepit-machine-" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto write = [&](const std::string& path, const std::string& text) {
    fs::create_directories((root / path).parent_path());
    std::ofstream{root / path} << text;
  };
  write("proc/meminfo", "MemTotal:       8388608 kB\nMemFree: 1 kB\nMemAvailable:   4194304 kB\n");
  write("proc/self/cgroup", "0::/a/b\n");
  write("sys/fs/cgroup/a/memory.max", "2147483648\n");  // the parent's limit binds
  write("sys/fs/cgroup/a/b/memory.max", "max\n");
  write("sys/fs/cgroup/a/b/cpu.max", "50000 100000\n");
  auto m = read_machine_info(root.string());
  CHECK(m.memory_total_bytes == 8ull << 30);
  CHECK(m.memory_available_bytes == 4ull << 30);
  CHECK(m.cgroup_memory_limit_bytes == std::optional<std::uint64_t>{2ull << 30});
  REQUIRE(m.cgroup_cpu_limit);
  CHECK(*m.cgroup_cpu_limit == doctest::Approx(0.5));
  // v1: unlimited is a huge number, not a limit; the CPU quota is in two files.
  write("proc/self/cgroup", "4:memory:/x\n3:cpu,cpuacct:/x\n0::/\n");
  write("sys/fs/cgroup/memory/x/memory.limit_in_bytes", "9223372036854771712\n");
  write("sys/fs/cgroup/cpu/x/cpu.cfs_quota_us", "50000\n");
  write("sys/fs/cgroup/cpu/x/cpu.cfs_period_us", "100000\n");
  m = read_machine_info(root.string());
  CHECK(!m.cgroup_memory_limit_bytes);
  REQUIRE(m.cgroup_cpu_limit);
  CHECK(*m.cgroup_cpu_limit == doctest::Approx(0.5));
  // CPU pressure (PSI) and the run queue.
  write("proc/pressure/cpu", "some avg10=87.50 avg60=42.00 avg300=10.00 total=123\n"
                             "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
  write("proc/loadavg", "14.44 10.79 6.08 16/186 8722\n");
  m = read_machine_info(root.string());
  REQUIRE(m.cpu_pressure_10s);
  CHECK(*m.cpu_pressure_10s == doctest::Approx(0.875));
  CHECK(*m.cpu_pressure_60s == doctest::Approx(0.42));
  CHECK(*m.load_1m == doctest::Approx(14.44));
  CHECK(m.runnable == std::optional<std::uint32_t>{16});
  // Nothing readable: zeros, no limits, no exception.
  fs::remove_all(root);
  m = read_machine_info(root.string());
  CHECK(m.memory_total_bytes == 0);
  CHECK(!m.cgroup_memory_limit_bytes);
  CHECK(!m.cgroup_cpu_limit);
  CHECK(!m.cpu_pressure_10s);
  CHECK(!m.runnable);
}

TEST_CASE("an autoscaled pool is advised on its bounds, not its size") {
  // At max_size and still rejecting: raise max_size.
  auto s = pool("ml", 4, 0.8, 1000);
  s.min_size = 1;
  s.max_size = 4;
  s.queue_full = 400;
  s.failed = 400;
  auto r = find(only_pool(machine(), s).recommendations, "pool_too_small");
  REQUIRE(r);
  CHECK(r->action == "set max_size = 6 in [pools.ml] (it autoscales 1..4)");
  // Room to grow but it did not: it grows too slowly.
  s.max_size = 16;
  r = find(only_pool(machine(), s).recommendations, "pool_too_small");
  REQUIRE(r);
  CHECK(has(r->action, "lower scale_up_wait_ms"));
  // Idle: it shrinks by itself; only a floor above the load is advice.
  auto idle = pool("idle", 8, 0.05, 200);
  idle.min_size = 1;
  idle.max_size = 8;
  CHECK(!find(only_pool(machine(), idle).recommendations, "pool_too_large"));
  idle.min_size = 6;
  r = find(only_pool(machine(), idle).recommendations, "pool_too_large");
  REQUIRE(r);
  CHECK(r->action == "set min_size = 1 in [pools.idle]");
}

TEST_CASE("an open circuit breaker is critical; poisoned requests point at the tool") {
  auto s = pool("flaky", 2, 0.5, 100);
  CHECK(!find(only_pool(machine(), s).recommendations, "breaker"));
  CHECK(!find(only_pool(machine(), s).recommendations, "poison"));
  s.breaker = "open";
  s.breaker_opened = 1;
  s.breaker_refused = 12;
  s.poisoned = 1;
  s.poison_refused = 3;
  auto d = only_pool(machine(), s);
  auto open = find(d.recommendations, "breaker");
  REQUIRE(open);
  CHECK(open->level == recommendation::severity::critical);
  CHECK(has(open->why, "refused 12 calls"));
  auto poison = find(d.recommendations, "poison");
  REQUIRE(poison);
  CHECK(has(poison->why, "1 request refused now, 3 calls refused so far"));
  s.breaker = "closed";
  open = find(only_pool(machine(), s).recommendations, "breaker");
  REQUIRE(open);
  CHECK(open->level == recommendation::severity::warning);
}
