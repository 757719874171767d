// Per-worker environment placeholders and CPU sets.
#include <doctest/doctest.h>

#include "snakepit/actors/worker_env.hpp"

using namespace snakepit;

TEST_CASE("worker env: {index}, {count} and {index % N} are expanded, other braces kept") {
  std::vector<std::pair<std::string, std::string>> env{
    {"SLOT", "{index}"},          {"OF", "{count}"},
    {"GPU", "{index % 2}"},       {"TIGHT", "{index%3}"},
    {"JSON", "{\"a\": {index}}"}, {"SHELL", "${HOME}/{unknown}"},
    {"OPEN", "{index"}};
  auto out = expand_worker_env(env, 5, 8);
  CHECK(out[0].second == "5");
  CHECK(out[1].second == "8");
  CHECK(out[2].second == "1");
  CHECK(out[3].second == "2");
  CHECK(out[4].second == "{\"a\": 5}");
  CHECK(out[5].second == "${HOME}/{unknown}");
  CHECK(out[6].second == "{index");
  CHECK(out[0].first == "SLOT");
}

TEST_CASE("worker env: placeholders that look meant but are wrong are named") {
  CHECK(bad_worker_env_placeholder("{index % 0}") == "{index % 0}");
  CHECK(bad_worker_env_placeholder("cuda:{index % x}") == "{index % x}");
  CHECK(bad_worker_env_placeholder("{idx}") == "{idx}");
  CHECK(bad_worker_env_placeholder("{counts}") == "{counts}");
  CHECK(bad_worker_env_placeholder("{index} {count} {index % 4}").empty());
  CHECK(bad_worker_env_placeholder("{\"json\": true} ${HOME}").empty());
}

TEST_CASE("cpu affinity: explicit sets round robin; spread over the CPUs we may use") {
  cpu_affinity_spec none;
  CHECK(none.cpus_for(3).empty());
  cpu_affinity_spec sets;
  sets.sets = {{0, 1}, {2}};
  CHECK(sets.cpus_for(0) == std::vector<int>{0, 1});
  CHECK(sets.cpus_for(1) == std::vector<int>{2});
  CHECK(sets.cpus_for(2) == std::vector<int>{0, 1});
  cpu_affinity_spec spread;
  spread.spread = true;
  auto first = spread.cpus_for(0);
  REQUIRE(first.size() == 1);
  CHECK(spread.cpus_for(1).size() == 1);
}
