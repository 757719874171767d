// The status server of a running tree (metrics, status, diagnosis), read
// with a real HTTP client while the pool is under load.

#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "pool_fixture.hpp"
#include "snakepit/observability/status_server.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

const char* tree_toml = R"(
[supervisors.app]
children = ["web"]

[pools.web]
adapter = "snakepit_bridge.showcase.ShowcaseAdapter"
size = 2
)";

/// Runs `command` and returns (exit status, stdout).
std::pair<int, std::string> capture(const std::string& command) {
  std::string out;
  auto* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  while (auto n = std::fread(buf, 1, sizeof buf, pipe))
    out.append(buf, n);
  auto status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string env_or(const char* name, const char* fallback) {
  auto* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

} // namespace

TEST_CASE_FIXTURE(system_fixture, "the status server serves valid Prometheus text and JSON under load") {
  auto spec = load_tree_string(tree_toml, "metrics.toml");
  REQUIRE(spec);
  auto tree = start_tree(*sys, *spec);
  REQUIRE(tree);
  status_server::options opts;
  auto server = status_server::start(opts, [&] { return tree->status(); });
  REQUIRE_MESSAGE(server, (server ? "" : describe(server.error()).message));
  auto pool = tree->pool("web");
  REQUIRE(pool);
  // Load: 4 callers doing no-op calls until told to stop, while we scrape.
  std::atomic<bool> stop_load{false};
  std::atomic<int> done{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < 4; ++i)
    callers.emplace_back([&] {
      while (!stop_load)
        if (call(*pool, make_request("noop")))
          ++done;
    });
  while (done < 50)
    std::this_thread::sleep_for(10ms);
  // Not a structured binding: CHECK_MESSAGE's lambda may not capture one (clang, C++17).
  auto first = capture(fmt::format("{} {}/tests/integration/check_metrics.py {} web 50 2>&1",
                                   env_or("SNAKEPIT_PYTHON", "python3"),
                                   SNAKEPIT_TEST_SOURCE_DIR, (*server)->base_url()));
  CHECK_MESSAGE(first.first == 0, first.second);
  // A second scrape under the same load: counters only grow.
  auto again = capture(fmt::format("{} {}/tests/integration/check_metrics.py {} web {} 2>&1",
                                   env_or("SNAKEPIT_PYTHON", "python3"),
                                   SNAKEPIT_TEST_SOURCE_DIR, (*server)->base_url(),
                                   done.load()));
  CHECK_MESSAGE(again.first == 0, again.second);
  stop_load = true;
  for (auto& t : callers)
    t.join();
  // Unknown paths name the known ones; the diagnosis is JSON.
  httplib::Client client{(*server)->base_url()};
  auto missing = client.Get("/nope");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(missing->body.find("/metrics") != std::string::npos);
  auto diagnosis = client.Get("/diagnosis");
  REQUIRE(diagnosis);
  CHECK(diagnosis->status == 200);
  CHECK(diagnosis->body.find("\"pools\"") != std::string::npos);
  server->reset();
  tree->stop();
}

TEST_CASE("a status server with a token refuses requests without it") {
  status_server::options opts;
  opts.http.token = "s3cret";
  auto server = status_server::start(opts, [] { return tree_status{}; });
  REQUIRE(server);
  httplib::Client client{(*server)->base_url()};
  auto refused = client.Get("/status");
  REQUIRE(refused);
  CHECK(refused->status == 401);
  auto allowed = client.Get("/status", {{"Authorization", "Bearer s3cret"}});
  REQUIRE(allowed);
  CHECK(allowed->status == 200);
  CHECK(allowed->body.find("\"pools\":[]") != std::string::npos);
}

TEST_CASE("a port in use is a clear configuration error") {
  status_server::options opts;
  auto first = status_server::start(opts, [] { return tree_status{}; });
  REQUIRE(first);
  opts.http.port = (*first)->port();
  auto second = status_server::start(opts, [] { return tree_status{}; });
  REQUIRE(!second);
  CHECK(describe(second.error()).kind == "bad_config");
  CHECK(describe(second.error()).message.find("cannot listen") != std::string::npos);
}

TEST_CASE_FIXTURE(system_fixture, "a tree file's [metrics] table starts the endpoint with the tree") {
  auto spec = load_tree_string(std::string{tree_toml} + "\n[metrics]\nenabled = true\nport = 0\n"
                                                        "path = \"/prom\"\n",
                               "metrics.toml");
  REQUIRE_MESSAGE(spec, (spec ? "" : describe(spec.error()).message));
  auto tree = start_tree(*sys, *spec);
  REQUIRE(tree);
  auto url = tree->metrics_url();
  REQUIRE(url.rfind("http://127.0.0.1:", 0) == 0);
  REQUIRE(url.size() > 5);
  CHECK(url.substr(url.size() - 5) == "/prom");
  auto base = url.substr(0, url.size() - 5);
  httplib::Client client{base};
  auto res = client.Get("/prom");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.find("snakepit_pool_ready_workers{pool=\"web\"} 2") != std::string::npos);
  tree->stop();
  CHECK(tree->metrics_url().empty());
  CHECK(!client.Get("/prom"));  // closed with the tree
}

TEST_CASE_FIXTURE(system_fixture, "a tree without [metrics] opens no port") {
  auto spec = load_tree_string(tree_toml, "metrics.toml");
  REQUIRE(spec);
  auto tree = start_tree(*sys, *spec);
  REQUIRE(tree);
  CHECK(tree->metrics_url().empty());
  tree->stop();
}
