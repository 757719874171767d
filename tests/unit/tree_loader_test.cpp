// Supervision trees in TOML: loading, validation and the problems it reports.

#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/all.hpp>
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "snakepit/messages/error.hpp"
#include "snakepit/supervision/actor_registry.hpp"
#include "snakepit/supervision/detail/toml_limits.hpp"
#include "snakepit/supervision/tree_loader.hpp"

using namespace snakepit;
using namespace std::chrono_literals;

namespace {

std::string trees_dir() {
  std::string here = __FILE__;
  return here.substr(0, here.find_last_of('/')) + "/trees";
}

/// 1-based line and column of the `nth` occurrence of `needle` in `text`.
std::pair<int, int> pos_of(std::string_view text, std::string_view needle, int nth = 0) {
  auto at = text.find(needle);
  for (; nth > 0 && at != std::string_view::npos; --nth)
    at = text.find(needle, at + 1);
  REQUIRE(at != std::string_view::npos);
  auto line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
  auto line_start = text.rfind('\n', at);
  auto column = static_cast<int>(line_start == std::string_view::npos ? at + 1
                                                                      : at - line_start);
  return {line, column};
}

std::string dump(const std::vector<config_problem>& problems) {
  std::string out;
  for (const auto& p : problems)
    out += p.to_string() + "\n";
  return out;
}

/// The only problem with this key path (fails when there is not exactly one).
const config_problem& problem_at(const std::vector<config_problem>& problems,
                                 std::string_view key_path) {
  INFO(dump(problems));
  auto n = std::count_if(problems.begin(), problems.end(),
                         [&](const auto& p) { return p.key_path == key_path; });
  REQUIRE_MESSAGE(n == 1, "problems at ", key_path, ": ", n);
  return *std::find_if(problems.begin(), problems.end(),
                       [&](const auto& p) { return p.key_path == key_path; });
}

/// Exactly these problems: one at each key path, with its message.
void check_messages(
  const std::vector<config_problem>& problems,
  std::initializer_list<std::pair<std::string_view, std::string_view>> expected) {
  INFO(dump(problems));
  CHECK(problems.size() == expected.size());
  for (const auto& [key_path, message] : expected)
    CHECK(problem_at(problems, key_path).message == message);
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

/// Checks that a problem sits exactly on the `nth` occurrence of `needle`.
void check_position(const config_problem& p, std::string_view text, std::string_view needle,
                    int nth = 0) {
  auto [line, column] = pos_of(text, needle, nth);
  INFO(p.to_string());
  CHECK(p.where.file == "t.toml");
  CHECK(p.where.line == line);
  CHECK(p.where.column == column);
}

std::vector<config_problem> check(std::string_view text,
                                  const actor_registry* registry = nullptr) {
  return check_tree_string(text, "t.toml", registry);
}

/// A minimal valid tree to which tests add one flaw.
constexpr std::string_view base = R"(
[supervisors.app]
children = ["ml"]

[pools.ml]
adapter = "pkg.mod.Cls"
)";

std::string with(std::string_view extra) {
  return std::string{base} + std::string{extra};
}

} // namespace

TEST_SUITE("tree_loader") {

TEST_CASE("tree: a full tree loads with every field") {
  actor_registry registry;
  registry.add("metrics_sink", [](caf::actor_system&, const value::map&) {
    return caf::expected<caf::actor>{caf::sec::invalid_argument};
  });
  auto path = trees_dir() + "/full.toml";
  CHECK(check_tree_file(path, &registry).empty());
  auto spec = load_tree_file(path, &registry);
  REQUIRE_MESSAGE(spec, describe(spec.error()).message);
  CHECK(spec->source == path);
  const auto& app = spec->root;
  CHECK(app.kind == node_kind::supervisor);
  CHECK(app.name == "app");
  CHECK(app.key_path == "supervisors.app");
  CHECK(app.where.file == path);
  CHECK(app.where.line == 4);
  CHECK(app.where.column == 1);
  CHECK(app.strategy == supervision_strategy::one_for_all);
  CHECK(app.intensity.max_restarts == 5);
  CHECK(app.intensity.period == 500ms);
  CHECK(app.backoff.min == 50ms);
  CHECK(app.backoff.max == 500ms);
  CHECK(app.restart == restart_type::permanent);
  CHECK(app.shutdown.mode == shutdown_policy::kind::infinity);
  REQUIRE(app.children.size() == 2);

  const auto& metrics = app.children[0];
  CHECK(metrics.kind == node_kind::actor);
  CHECK(metrics.name == "metrics");
  CHECK(metrics.key_path == "actors.metrics");
  CHECK(metrics.where.line == 43);
  CHECK(metrics.actor_kind == "metrics_sink");
  CHECK(metrics.restart == restart_type::transient);
  CHECK(metrics.shutdown.mode == shutdown_policy::kind::timeout);
  CHECK(metrics.shutdown.timeout == 2000ms);
  value::map args{
    {"interval_ms", value(1000)},
    {"ratio", value(0.5)},
    {"label", value("m")},
    {"on", value(true)},
    {"tags", value::make_list({"a", 1})},
    {"nested", value::make_map({{"x", 1}})},
    {"since", value("1979-05-27")},
  };
  CHECK(value(metrics.args) == value(args));
  CHECK(metrics.args.at("interval_ms").is_int());
  CHECK(metrics.children.empty());

  const auto& services = app.children[1];
  CHECK(services.kind == node_kind::supervisor);
  CHECK(services.name == "services");
  CHECK(services.strategy == supervision_strategy::rest_for_one);
  CHECK(services.intensity.max_restarts == 3);
  CHECK(services.intensity.period == 5s);
  CHECK(services.backoff.min == 100ms);
  CHECK(services.backoff.max == 2s);
  CHECK(services.restart == restart_type::transient);
  CHECK(services.shutdown.mode == shutdown_policy::kind::timeout);
  CHECK(services.shutdown.timeout == 30s);
  REQUIRE(services.children.size() == 2);

  const auto& ml = services.children[0];
  CHECK(ml.kind == node_kind::pool);
  CHECK(ml.name == "ml");
  CHECK(ml.key_path == "pools.ml");
  CHECK(ml.where.line == 18);
  CHECK(ml.restart == restart_type::temporary);
  CHECK(ml.shutdown.mode == shutdown_policy::kind::brutal_kill);
  const auto& cfg = ml.pool;
  CHECK(cfg.name == "ml");
  CHECK(cfg.adapter == "pkg.module.MlAdapter");
  CHECK(cfg.size == 4);
  CHECK(cfg.min_ready == 2);
  CHECK(cfg.python == "/usr/bin/python3");
  CHECK(cfg.python_path == std::vector<std::string>{"/opt/a", "/opt/b"});
  using env_t = std::vector<std::pair<std::string, std::string>>;
  CHECK(cfg.env == env_t{{"MODE", "fast"}, {"OMP_NUM_THREADS", "1"}});
  CHECK(cfg.startup_concurrency == 2);
  CHECK(cfg.startup_timeout == 30s);
  CHECK(cfg.queue_max == 100);
  CHECK(cfg.queue_timeout == 2500ms);
  CHECK(cfg.request_timeout == 15s);
  CHECK(cfg.deadline_grace == 250ms);
  CHECK(cfg.max_payload_bytes == 1048576);
  CHECK(cfg.shutdown_timeout == 3s);
  CHECK(cfg.intensity.max_restarts == 7);
  CHECK(cfg.intensity.period == 20s);
  CHECK(cfg.backoff.min == 10ms);
  CHECK(cfg.backoff.max == 1s);

  // Defaults, resolved as validate(pool_config) does.
  const auto& text = services.children[1];
  CHECK(text.name == "text");
  CHECK(text.restart == restart_type::permanent);
  CHECK(text.shutdown.mode == shutdown_policy::kind::timeout);
  CHECK(text.shutdown.timeout == 6s); // shutdown_timeout_ms (5000) + 1000
  pool_config defaults;
  CHECK(text.pool.adapter == "pkg.text.TextAdapter");
  CHECK(text.pool.size == defaults.size);
  CHECK(text.pool.min_ready == defaults.size);
  CHECK(text.pool.python.empty());
  CHECK(text.pool.startup_timeout == defaults.startup_timeout);
  CHECK(text.pool.request_timeout == defaults.request_timeout);
  CHECK(text.pool.intensity.max_restarts == 3);
  CHECK(text.pool.intensity.period == defaults.intensity.period);

  CHECK(spec->logging.level == log_level::debug);
  CHECK(spec->logging.format == log_format::json);
  CHECK(spec->metrics.enabled);
  CHECK(spec->metrics.bind == "::1");
  CHECK(spec->metrics.port == 0);
  CHECK(spec->metrics.path == "/prom");
}

TEST_CASE("tree: the root is the one supervisor nobody lists; describe_tree shows it") {
  auto spec = load_tree_string(base, "t.toml");
  REQUIRE_MESSAGE(spec, describe(spec.error()).message);
  CHECK(spec->root.name == "app");
  CHECK(spec->root.shutdown.mode == shutdown_policy::kind::infinity);
  auto full = load_tree_file(trees_dir() + "/full.toml");
  REQUIRE(full);
  auto text = describe_tree(*full);
  INFO(text);
  CHECK(contains(text, "supervisor app: one_for_all, at most 5 restarts in 0.5 s, back-off "
                       "50..500 ms; restart permanent, shutdown infinity\n"));
  CHECK(contains(text, "\n  actor metrics: kind metrics_sink, args {"));
  CHECK(contains(text, "; restart transient, shutdown 2000 ms\n"));
  CHECK(contains(text, "\n  supervisor services: rest_for_one, at most 3 restarts in 5 s"));
  CHECK(contains(text, "\n    pool ml: adapter pkg.module.MlAdapter, size 4, min_ready 2, "
                       "python /usr/bin/python3; restart temporary, shutdown brutal_kill\n"));
  CHECK(contains(text, "\n    pool text: adapter pkg.text.TextAdapter, size 2, min_ready 2, "
                       "python auto; restart permanent, shutdown 6000 ms\n"));
  CHECK(text.rfind(fmt::format("tree from {}\nlogging: level debug, format json\nmetrics: "
                               "http://[::1]:<any free port>/prom\nsupervisor app: ",
                               trees_dir() + "/full.toml"),
                   0)
        == 0);
  // Left out of the file: left out of the rendering.
  CHECK(describe_tree(*spec).rfind("tree from t.toml\nsupervisor app: ", 0) == 0);
}

TEST_CASE("tree: [logging] and [metrics] are optional; each key has a default") {
  auto spec = load_tree_string(base, "t.toml");
  REQUIRE_MESSAGE(spec, describe(spec.error()).message);
  CHECK(!spec->logging.level);
  CHECK(!spec->logging.format);
  metrics_spec defaults;
  CHECK(!spec->metrics.enabled);
  CHECK(spec->metrics.bind == "127.0.0.1");
  CHECK(spec->metrics.port == 9464);
  CHECK(spec->metrics.path == "/metrics");
  CHECK(spec->metrics.bind == defaults.bind);
  CHECK(spec->metrics.port == defaults.port);

  auto level_only = load_tree_string(with("[logging]\nlevel = \"warning\"\n"), "t.toml");
  REQUIRE_MESSAGE(level_only, describe(level_only.error()).message);
  CHECK(level_only->logging.level == log_level::warning);
  CHECK(!level_only->logging.format);
  CHECK(contains(describe_tree(*level_only), "\nlogging: level warning\n"));

  for (auto level : {"debug", "info", "warning", "error", "off"}) {
    auto x = load_tree_string(with(fmt::format("[logging]\nlevel = \"{}\"\n", level)), "t.toml");
    REQUIRE_MESSAGE(x, describe(x.error()).message);
    CHECK(x->logging.level == parse_log_level(level));
  }
  auto text = load_tree_string(with("[logging]\nformat = \"text\"\n"), "t.toml");
  REQUIRE_MESSAGE(text, describe(text.error()).message);
  CHECK(text->logging.format == log_format::text);
  CHECK(contains(describe_tree(*text), "\nlogging: format text\n"));

  for (auto bind : {"127.0.0.1", "0.0.0.0", "::1", "::", "fe80::1", "localhost"}) {
    auto x = load_tree_string(with(fmt::format("[metrics]\nenabled = true\nbind = \"{}\"\n",
                                               bind)),
                              "t.toml");
    REQUIRE_MESSAGE(x, describe(x.error()).message);
    CHECK(x->metrics.bind == bind);
  }
  auto ports = load_tree_string(with("[metrics]\nport = 65535\npath = \"/a/b-c_d.txt\"\n"),
                                "t.toml");
  REQUIRE_MESSAGE(ports, describe(ports.error()).message);
  CHECK(!ports->metrics.enabled);
  CHECK(ports->metrics.port == 65535);
  CHECK(ports->metrics.path == "/a/b-c_d.txt");
  // Not enabled: nothing to say about an endpoint.
  CHECK(!contains(describe_tree(*ports), "metrics:"));
  auto on = load_tree_string(with("[metrics]\nenabled = true\n"), "t.toml");
  REQUIRE_MESSAGE(on, describe(on.error()).message);
  CHECK(contains(describe_tree(*on), "\nmetrics: http://127.0.0.1:9464/metrics\n"));
  CHECK(on->metrics.max_connections == defaults.max_connections);
  CHECK(on->metrics.request_timeout_ms == 5000);
  auto bounded = load_tree_string(with("[metrics]\nmax_connections = 4\n"
                                       "max_connections_per_client = 2\n"
                                       "request_timeout_ms = 250\nwrite_timeout_ms = 1000\n"),
                                  "t.toml");
  REQUIRE_MESSAGE(bounded, describe(bounded.error()).message);
  CHECK(bounded->metrics.max_connections == 4);
  CHECK(bounded->metrics.max_connections_per_client == 2);
  CHECK(bounded->metrics.request_timeout_ms == 250);
  CHECK(bounded->metrics.write_timeout_ms == 1000);
}

TEST_CASE("tree: [logging] and [metrics] report every bad value at its key") {
  auto text = with(R"(
[logging]
level = "verbose"
format = "logfmt"
levle = "info"

[metrics]
enabled = "yes"
bind = "example.com"
port = 70000
path = "metrics"
prot = 9000
max_connections = 0
request_timeout_ms = 10
)");
  auto problems = check(text);
  check_messages(problems,
                 {{"logging.level",
                   "expected one of debug, info, warning, error or off, got \"verbose\""},
                  {"logging.format", "expected one of text or json, got \"logfmt\""},
                  {"logging.levle", "unknown key 'levle' in [logging] (did you mean 'level'?)"},
                  {"metrics.enabled", "expected true or false, got string \"yes\""},
                  {"metrics.bind",
                   "expected an IPv4 or IPv6 address, or \"localhost\", got \"example.com\""},
                  {"metrics.port", "expected a port number of at most 65535, got 70000"},
                  {"metrics.path", "expected a URL path starting with '/' (no spaces, '?' or "
                                   "'#'), got \"metrics\" (did you mean \"/metrics\"?)"},
                  {"metrics.prot", "unknown key 'prot' in [metrics] (did you mean 'port'?)"},
                  {"metrics.max_connections",
                   "expected a connection count (at least 1), got 0"},
                  {"metrics.request_timeout_ms",
                   "expected milliseconds (100 to 600000), got 10"}});
  check_position(problem_at(problems, "logging.level"), text, "\"verbose\"");
  check_position(problem_at(problems, "logging.levle"), text, "levle");
  check_position(problem_at(problems, "metrics.bind"), text, "\"example.com\"");

  SUBCASE("more bad values") {
    check_messages(
      check(with(R"(
[logging]
level = "warn"
format = 1
colour = true

[metrics]
enabled = 1
bind = "[::1]"
port = -1
path = "/a b"
)")),
      {{"logging.level", "expected one of debug, info, warning, error or off, got \"warn\" "
                         "(did you mean 'warning'?)"},
       {"logging.format", "expected one of text or json, got integer 1"},
       {"logging.colour", "unknown key 'colour' in [logging]; expected one of level or format"},
       {"metrics.enabled", "expected true or false, got integer 1"},
       {"metrics.bind", "expected an IPv4 or IPv6 address, or \"localhost\", got \"[::1]\" "
                        "(write an IPv6 address without brackets: \"::1\")"},
       {"metrics.port", "expected a port number, got -1"},
       {"metrics.path",
        "expected a URL path starting with '/' (no spaces, '?' or '#'), got \"/a b\""}});
  }
  SUBCASE("wrong types of the tables and their values") {
    // Top-level keys after a [table] header would belong to it: they come first.
    auto first = std::string{"logging = \"debug\"\nmetrics = true\n"} + std::string{base};
    auto tables = check(first);
    check_messages(tables, {{"logging", "expected a table ([logging]), got string \"debug\""},
                            {"metrics", "expected a table ([metrics]), got boolean true"}});
    check_position(problem_at(tables, "logging"), first, "\"debug\"");
    check_messages(
      check(with("[metrics]\nbind = \"\"\nport = \"9464\"\npath = 7\n")),
      {{"metrics.bind", "expected an IPv4 or IPv6 address, or \"localhost\", got string \"\""},
       {"metrics.port", "expected a port number, got string \"9464\""},
       {"metrics.path", "expected a URL path starting with '/' (no spaces, '?' or '#'), got "
                        "integer 7"}});
  }
  SUBCASE("misspelled tables") {
    auto more = check(std::string{"[loging]\nlevel = \"info\"\n[metric]\nport = 1\n"}
                      + std::string{base});
    INFO(dump(more));
    CHECK(contains(problem_at(more, "loging").message,
                   "unknown top-level key 'loging' (did you mean 'logging'?)"));
    CHECK(contains(problem_at(more, "metric").message,
                   "unknown top-level key 'metric' (did you mean 'metrics'?)"));
    CHECK(contains(problem_at(check(std::string{"[tracing]\n"} + std::string{base}), "tracing")
                     .message,
                   "expected root, [supervisors.NAME], [pools.NAME], [remote_pools.NAME], [actors.NAME], [logging], "
                   "[metrics], [gateway], [node] or [plugins]"));
  }
}

TEST_CASE("tree: a syntax error is reported with its position, and nothing else") {
  constexpr std::string_view text = "[supervisors.app]\nchildren = [\"ml\",, ]\n";
  auto problems = check(text);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].where.file == "t.toml");
  CHECK(problems[0].where.line == 2);
  CHECK(problems[0].where.column > 0);
  CHECK(problems[0].key_path.empty());
  CHECK(contains(problems[0].message, "syntax error: "));
  CHECK(contains(problems[0].to_string(), "t.toml:2:"));
}

TEST_CASE("tree: wrong types name the key path, what was expected and what came") {
  auto text = with(R"(size = "four"
min_ready = 1.5
python_path = ["/a", 3]
env = { A = "1", B = 2 }
max_seconds = "5"
[actors.x]
kind = 7
args = "none"
)");
  auto problems = check(text);
  INFO(dump(problems));
  const auto& size = problem_at(problems, "pools.ml.size");
  CHECK(size.message == "expected a positive integer, got string \"four\"");
  check_position(size, text, "\"four\"");
  CHECK(size.to_string() == fmt::format("t.toml:{}:8: pools.ml.size: expected a positive "
                                        "integer, got string \"four\"",
                                        pos_of(text, "size =").first));
  CHECK(problem_at(problems, "pools.ml.min_ready").message
        == "expected an integer >= 0, got float 1.5");
  const auto& element = problem_at(problems, "pools.ml.python_path[1]");
  CHECK(element.message == "expected a non-empty string, got integer 3");
  check_position(element, text, "3]");
  const auto& env = problem_at(problems, "pools.ml.env.B");
  CHECK(env.message == "expected a string, got integer 2");
  check_position(env, text, "2 }");
  CHECK(contains(problem_at(problems, "pools.ml.max_seconds").message,
                 "expected a positive number of seconds (integer or float), got string"));
  CHECK(contains(problem_at(problems, "actors.x.kind").message,
                 "expected the name of a registered actor kind, got integer 7"));
  CHECK(problem_at(problems, "actors.x.args").message == "expected a table, got string \"none\"");
}

TEST_CASE("tree: unknown keys are reported at the key with a suggestion") {
  auto text = with(R"(sise = 3
[supervisors.app2]
strtegy = "one_for_one"
children = ["x"]
name = "other"
[pool.extra]
adapter = "a.b"
[actors.x]
kind = "k"
strategy = "one_for_one"
)");
  auto problems = check(text);
  INFO(dump(problems));
  const auto& sise = problem_at(problems, "pools.ml.sise");
  CHECK(sise.message == "unknown key 'sise' in a pool (did you mean 'size'?)");
  check_position(sise, text, "sise");
  const auto& strtegy = problem_at(problems, "supervisors.app2.strtegy");
  CHECK(contains(strtegy.message, "(did you mean 'strategy'?)"));
  check_position(strtegy, text, "strtegy");
  CHECK(contains(problem_at(problems, "supervisors.app2.name").message,
                 "its name is the section name, as in [supervisors.NAME]"));
  const auto& pool = problem_at(problems, "pool");
  CHECK(contains(pool.message, "unknown top-level key 'pool' (did you mean 'pools'?)"));
  check_position(pool, text, "pool.extra");
  CHECK(contains(problem_at(problems, "actors.x.strategy").message,
                 "(it is a key of supervisors)"));
}

TEST_CASE("tree: missing required keys are reported at their table") {
  constexpr std::string_view text = R"(
[supervisors.app]
strategy = "one_for_one"

[pools.ml]
size = 2

[actors.a]
restart = "temporary"
)";
  auto problems = check(text);
  INFO(dump(problems));
  const auto& children = problem_at(problems, "supervisors.app");
  CHECK(contains(children.message, "missing required key 'children'"));
  check_position(children, text, "[supervisors.app]");
  const auto& adapter = problem_at(problems, "pools.ml");
  CHECK(contains(adapter.message, "missing required key 'adapter'"));
  check_position(adapter, text, "[pools.ml]");
  // validate() says so too; the loader reports it once.
  CHECK(std::none_of(problems.begin(), problems.end(), [](const auto& p) {
    return contains(p.message, "adapter is required");
  }));
  CHECK(contains(problem_at(problems, "actors.a").message, "missing required key 'kind'"));
  // OTP allows a supervisor without children (children are added at run time).
  constexpr std::string_view empty_children = "[supervisors.app]\nchildren = []\n";
  CHECK(check(empty_children).empty());
  auto loaded = load_tree_string(empty_children, "t.toml");
  REQUIRE(loaded);
  CHECK(loaded->root.children.empty());
  CHECK(contains(problem_at(check("[supervisors.app]\nchildren = \"a\"\n"),
                            "supervisors.app.children").message,
                 "expected an array of names"));
}

TEST_CASE("tree: names, references and shape") {
  SUBCASE("duplicate names across sections") {
    auto text = with("[actors.ml]\nkind = \"k\"\n");
    auto problems = check(text);
    const auto& dup = problem_at(problems, "actors.ml");
    CHECK(dup.message == fmt::format("the name 'ml' is already taken by pools.ml (line {}): "
                                     "names must be unique across supervisors, pools and "
                                     "actors",
                                     pos_of(text, "[pools.ml]").first));
    check_position(dup, text, "[actors.ml]");
  }
  SUBCASE("a name referenced by two parents") {
    constexpr std::string_view text = R"(
[supervisors.app]
children = ["ml", "sub"]
[supervisors.sub]
children = ["ml"]
[pools.ml]
adapter = "a.b"
)";
    auto problems = check(text);
    const auto& twice = problem_at(problems, "supervisors.sub.children[0]");
    CHECK(contains(twice.message, "'ml' is already a child of supervisor 'app' "
                                  "(supervisors.app.children[0], line 3): a node has "
                                  "exactly one parent"));
    check_position(twice, text, "\"ml\"", 1);
    CHECK(problems.size() == 1);
  }
  SUBCASE("references to undefined names") {
    auto text = std::string{R"(
[supervisors.app]
children = ["ml", "mll", "nothing_like_it"]
)"} + std::string{base.substr(base.find("[pools"))};
    auto problems = check(text);
    const auto& typo = problem_at(problems, "supervisors.app.children[1]");
    CHECK(typo.message == "no supervisor, pool or actor is named \"mll\" (did you mean 'ml'?)");
    check_position(typo, text, "\"mll\"");
    CHECK(problem_at(problems, "supervisors.app.children[2]").message
          == "no supervisor, pool or actor is named \"nothing_like_it\"");
    // The definition a misspelled reference meant is not also "unreferenced".
    auto meant = check("[supervisors.app]\nchildren = [\"embedings\"]\n"
                       "[pools.embeddings]\nadapter = \"a.b\"\n");
    CHECK(meant.size() == 1);
    CHECK(contains(problem_at(meant, "supervisors.app.children[0]").message,
                   "(did you mean 'embeddings'?)"));
  }
  SUBCASE("definitions nobody references") {
    auto text = with("[pools.spare]\nadapter = \"a.b\"\n");
    auto problems = check(text);
    const auto& spare = problem_at(problems, "pools.spare");
    CHECK(spare.message == "pool 'spare' is defined but not listed in any supervisor's "
                           "children, so it is not part of the tree under 'app'");
    check_position(spare, text, "[pools.spare]");
  }
  SUBCASE("cycles") {
    constexpr std::string_view text = R"(
root = "app"
[supervisors.app]
children = ["ml"]
[pools.ml]
adapter = "a.b"
[supervisors.a]
children = ["b"]
[supervisors.b]
children = ["a"]
)";
    auto problems = check(text);
    const auto& cycle = problem_at(problems, "supervisors.a.children[0]");
    CHECK(contains(cycle.message, "cycle: a -> b -> a"));
    check_position(cycle, text, "\"b\"");
    CHECK(problems.size() == 1);
    auto self = check("[supervisors.s]\nchildren = [\"s\"]\n");
    CHECK(contains(problem_at(self, "supervisors.s.children[0]").message, "cycle: s -> s"));
    CHECK(contains(problem_at(self, "root").message, "no root supervisor"));
  }
  SUBCASE("several candidate roots, none, or a bad explicit root") {
    auto text = with("[supervisors.other]\nchildren = [\"x\"]\n[actors.x]\nkind = \"k\"\n");
    auto problems = check(text);
    const auto& roots = problem_at(problems, "root");
    CHECK(contains(roots.message, "several supervisors are nobody's child: 'app' (line 2), "
                                  "'other' (line "));
    CHECK(contains(roots.message, "set root = \"NAME\""));
    CHECK(problems.size() == 1);
    // Naming the root turns the other into an unreferenced definition.
    auto rooted = check("root = \"app\"\n" + text);
    CHECK(contains(problem_at(rooted, "supervisors.other").message,
                   "is defined but not listed in any supervisor's children"));
    CHECK(contains(problem_at(check("root = \"ap\"\n" + text), "root").message,
                   "no supervisor is named \"ap\" (did you mean 'app'?)"));
    CHECK(contains(problem_at(check("root = \"ml\"\n" + std::string{base}), "root").message,
                   "the root must be a supervisor, but 'ml' is a pool (pools.ml)"));
    auto none = check("[pools.ml]\nadapter = \"a.b\"\n");
    CHECK(contains(problem_at(none, "supervisors").message, "no supervisor is defined"));
    CHECK(none.size() == 1);
  }
}

TEST_CASE("tree: impossible values") {
  actor_registry registry;
  auto nop = [](caf::actor_system&, const value::map&) {
    return caf::expected<caf::actor>{caf::sec::invalid_argument};
  };
  registry.add("metrics_sink", nop);
  registry.add("cache", nop);
  auto text = std::string{R"(
[supervisors.app]
strategy = "one_for_al"
max_restarts = -1
max_seconds = 0
restart_backoff_min_ms = 3000
children = ["ml", "zero", "dyn", "neg", "m", "lazy", "bad"]
restart = "forever"

[supervisors.dyn]
strategy = "dynamic"
children = ["m2"]
shutdown = "brutal"

[pools.ml]
adapter = "nodots"
size = 2
min_ready = 3

[pools.zero]
adapter = "a..b"
size = 0
request_timeout_ms = 0

[pools.neg]
adapter = "a.b"
size = -1
deadline_grace_ms = -5
queue_max = 20000000
max_payload_bytes = 100

[actors.m]
kind = "metrcs_sink"
shutdown = "infinity"

[actors.m2]
kind = "cache"
shutdown = -3

[actors.lazy]
kind = "cache"
shutdown = 1.5

[pools.bad]
adapter = "a.b"
min_ready = 5
restart_backoff_max_ms = 10
)"};
  auto problems = check_tree_string(text, "t.toml", &registry);
  INFO(dump(problems));
  CHECK(problem_at(problems, "supervisors.app.strategy").message
        == "expected one of one_for_one, one_for_all, rest_for_one or dynamic, got "
           "\"one_for_al\" (did you mean 'one_for_all'?)");
  CHECK(problem_at(problems, "supervisors.app.max_restarts").message
        == "expected an integer >= 0, got -1");
  CHECK(contains(problem_at(problems, "supervisors.app.max_seconds").message,
                 "expected a positive number of seconds"));
  CHECK(problem_at(problems, "supervisors.app.restart_backoff_min_ms").message
        == "restart_backoff_min_ms (3000 ms) must not exceed restart_backoff_max_ms (2000 ms)");
  CHECK(contains(problem_at(problems, "supervisors.app.restart").message,
                 "expected one of permanent, transient or temporary, got \"forever\""));
  CHECK(contains(problem_at(problems, "supervisors.dyn.children").message,
                 "a dynamic supervisor has no declared children"));
  CHECK(contains(problem_at(problems, "supervisors.dyn.shutdown").message,
                 "got \"brutal\" (did you mean 'brutal_kill'?)"));
  // From validate(pool_config), at the key it names.
  const auto& adapter = problem_at(problems, "pools.ml.adapter");
  CHECK(contains(adapter.message, "dotted path"));
  check_position(adapter, text, "\"nodots\"");
  const auto& min_ready = problem_at(problems, "pools.ml.min_ready");
  CHECK(min_ready.message == "must not exceed size");
  check_position(min_ready, text, "3", 1);
  CHECK(contains(problem_at(problems, "pools.zero.adapter").message,
                 "expected a dotted path package.module.ClassName (Python identifiers "
                 "separated by dots), got \"a..b\""));
  CHECK(problem_at(problems, "pools.zero.size").message
        == "expected a positive integer, got 0");
  CHECK(problem_at(problems, "pools.zero.request_timeout_ms").message
        == "expected a positive integer (milliseconds), got 0");
  CHECK(problem_at(problems, "pools.neg.size").message
        == "expected a positive integer, got -1");
  CHECK(problem_at(problems, "pools.neg.deadline_grace_ms").message
        == "expected an integer >= 0 (milliseconds), got -5");
  CHECK(problem_at(problems, "pools.neg.queue_max").message
        == "must be at most 10000000");
  CHECK(contains(problem_at(problems, "pools.neg.max_payload_bytes").message,
                 "must be between 1024 and"));
  const auto& kind = problem_at(problems, "actors.m.kind");
  CHECK(kind.message == "unknown actor kind \"metrcs_sink\" (did you mean 'metrics_sink'?); "
                        "registered kinds: cache, metrics_sink (snakepit run registers kinds "
                        "from the libraries in [plugins] libraries, docs/plugins.md)");
  check_position(kind, text, "\"metrcs_sink\"");
  // "infinity" is accepted for actors too (documented as risky, as in OTP).
  CHECK(std::none_of(problems.begin(), problems.end(),
                     [](const auto& p) { return p.key_path == "actors.m.shutdown"; }));
  CHECK(problem_at(problems, "actors.m2.shutdown").message
        == "expected an integer >= 0 (milliseconds), \"brutal_kill\" or \"infinity\", got -3");
  CHECK(problem_at(problems, "actors.lazy.shutdown").message
        == "expected an integer >= 0 (milliseconds), \"brutal_kill\" or \"infinity\", got "
           "float 1.5");
  // A default (size 2) against a declared min_ready, and a declared maximum
  // below the default minimum.
  CHECK(problem_at(problems, "pools.bad.min_ready").message == "must not exceed size");
  CHECK(contains(problem_at(problems, "pools.bad.restart_backoff_max_ms").message,
                 "(100 ms) must not exceed restart_backoff_max_ms (10 ms)"));
  // Without a registry any kind goes; an empty one lists none.
  auto any_kind = check_tree_string(with("[actors.x]\nkind = \"anything\"\n"), "t.toml");
  CHECK(std::none_of(any_kind.begin(), any_kind.end(),
                     [](const auto& p) { return p.key_path == "actors.x.kind"; }));
  actor_registry empty;
  auto none = check_tree_string(with("[actors.x]\nkind = \"anything\"\n"), "t.toml", &empty);
  CHECK(contains(problem_at(none, "actors.x.kind").message, "no actor kinds are registered"));
}

TEST_CASE("tree: all problems of a file are reported at once, in file order") {
  constexpr std::string_view text = R"(
[supervisors.app]
children = ["ml", "ghost"]
strategy = "all_for_one"

[pools.ml]
adapter = "pkg.mod.Cls"
size = "4"
sise = 4

[actors.orphan]
kind = "k"
shutdown = "forever"
)";
  auto problems = check(text);
  INFO(dump(problems));
  REQUIRE(problems.size() == 6);
  CHECK(problems[0].key_path == "supervisors.app.children[1]");
  CHECK(problems[1].key_path == "supervisors.app.strategy");
  CHECK(problems[2].key_path == "pools.ml.size");
  CHECK(problems[3].key_path == "pools.ml.sise");
  CHECK(problems[4].key_path == "actors.orphan");
  CHECK(problems[5].key_path == "actors.orphan.shutdown");
  CHECK(std::is_sorted(problems.begin(), problems.end(), [](const auto& x, const auto& y) {
    return x.where.line < y.where.line;
  }));
  auto loaded = load_tree_string(text, "t.toml");
  REQUIRE(!loaded);
  CHECK(is(loaded.error(), errc::bad_config));
  auto message = describe(loaded.error()).message;
  auto expected = std::string{"6 problems in t.toml:"};
  for (const auto& p : problems)
    expected += "\n" + p.to_string();
  CHECK(message == expected);
  auto one = load_tree_string("[supervisors.app]\nchildren = \"x\"\n", "one.toml");
  REQUIRE(!one);
  CHECK(contains(describe(one.error()).message, "1 problem in one.toml:\none.toml:2:12: "));
}

TEST_CASE("tree: files that cannot be read") {
  auto missing = trees_dir() + "/no-such-tree.toml";
  auto problems = check_tree_file(missing);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].where.file == missing);
  CHECK(problems[0].where.line == 0);
  CHECK(problems[0].to_string()
        == missing + ": cannot read the tree file: No such file or directory");
  auto loaded = load_tree_file(missing);
  REQUIRE(!loaded);
  CHECK(describe(loaded.error()).message
        == "1 problem in " + missing + ":\n" + problems[0].to_string());
  auto dir = check_tree_file(trees_dir());
  REQUIRE(dir.size() == 1);
  CHECK(contains(dir[0].message, "is a directory"));
}

TEST_CASE("tree: the example in docs/configuration.md loads and renders as shown") {
  std::ifstream in{trees_dir() + "/../../../docs/configuration.md"};
  REQUIRE(in);
  std::string doc{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  auto block_after = [&](std::string_view marker, std::string_view fence) {
    auto at = doc.find(marker);
    REQUIRE(at != std::string::npos);
    auto start = doc.find(fence, at);
    REQUIRE(start != std::string::npos);
    start += fence.size();
    auto end = doc.find("```", start);
    REQUIRE(end != std::string::npos);
    return doc.substr(start, end - start);
  };
  auto toml = block_after("<!-- example: tree", "```toml\n");
  auto rendering = block_after("`describe_tree` renders it as:", "```\n");
  actor_registry registry;
  registry.add("metrics_sink", [](caf::actor_system&, const value::map&) {
    return caf::expected<caf::actor>{caf::sec::invalid_argument};
  });
  auto spec = load_tree_string(toml, "app.toml", &registry);
  REQUIRE_MESSAGE(spec, describe(spec.error()).message);
  CHECK(describe_tree(*spec) == rendering);
}

TEST_CASE("tree: actor registry") {
  actor_registry registry;
  CHECK(registry.find("x") == nullptr);
  CHECK(registry.kinds().empty());
  registry.add("b", [](caf::actor_system&, const value::map&) {
    return caf::expected<caf::actor>{caf::sec::invalid_argument};
  });
  registry.add("a", [](caf::actor_system&, const value::map& args) {
    return caf::expected<caf::actor>{args.empty() ? caf::sec::invalid_argument
                                                  : caf::sec::runtime_error};
  });
  CHECK(registry.kinds() == std::vector<std::string>{"a", "b"});
  REQUIRE(registry.find("a") != nullptr);
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto made = registry.find("a")->make(sys, actor_context{"x", value::map{}});
  REQUIRE(!made);
  CHECK(made.error() == caf::sec::invalid_argument);
  registry.add("a", [](caf::actor_system& s, const value::map&) {
    auto echo = [] { return caf::behavior{[](int x) { return x; }}; };
    return caf::expected<caf::actor>{s.spawn(echo)};
  });
  auto spawned = registry.find("a")->make(sys, actor_context{"x", value::map{}});
  REQUIRE(spawned);
  caf::anon_send_exit(*spawned, caf::exit_reason::user_shutdown);
}

} // TEST_SUITE("tree_loader")

TEST_SUITE("tree_loader") {

TEST_CASE("tree: stream_window defaults to 16 and is bounded") {
  auto spec = load_tree_string(base, "t.toml");
  REQUIRE(spec);
  CHECK(spec->root.children.at(0).pool.stream_window == 16);
  auto set = load_tree_string(with("stream_window = 64\n"), "t.toml");
  REQUIRE(set);
  CHECK(set->root.children.at(0).pool.stream_window == 64);
  for (auto bad : {"stream_window = 0\n", "stream_window = 4097\n"}) {
    auto problems = check(with(bad));
    CHECK(problem_at(problems, "pools.ml.stream_window").message.find("1..4096")
          != std::string::npos);
  }
}

} // TEST_SUITE

TEST_SUITE("tree_loader") {

TEST_CASE("tree: significant, auto_shutdown and start_timeout_ms follow OTP's rules") {
  actor_registry registry;
  registry.add("job", [](caf::actor_system&, const value::map&) {
    return caf::expected<caf::actor>{caf::sec::runtime_error};
  });
  auto spec = load_tree_string(R"(
[supervisors.app]
children = ["jobs"]
auto_shutdown = "any_significant"

[supervisors.jobs]
children = ["j"]
restart = "transient"
significant = true
auto_shutdown = "all_significant"

[actors.j]
kind = "job"
restart = "temporary"
significant = true
shutdown = "infinity"
start_timeout_ms = 1500
)",
                               "t.toml", &registry);
  REQUIRE_MESSAGE(spec, (spec ? "" : describe(spec.error()).message));
  CHECK(spec->root.shutdown_when == auto_shutdown::any_significant);
  const auto& jobs = spec->root.children.at(0);
  CHECK(jobs.significant);
  CHECK(jobs.shutdown_when == auto_shutdown::all_significant);
  const auto& j = jobs.children.at(0);
  CHECK(j.significant);
  CHECK(j.shutdown.mode == shutdown_policy::kind::infinity);
  CHECK(j.start_timeout == std::chrono::milliseconds{1500});
  auto problems = check_tree_string(R"(
[supervisors.app]
children = ["p"]
auto_shutdown = "any"

[pools.p]
adapter = "a.b.C"
significant = true
)",
                                    "t.toml");
  INFO(dump(problems));
  CHECK(contains(problem_at(problems, "supervisors.app.auto_shutdown").message,
                 "expected one of never, any_significant or all_significant"));
  CHECK(contains(problem_at(problems, "pools.p.significant").message,
                 "must be transient or temporary"));
}

} // TEST_SUITE("tree_loader")

TEST_SUITE("tree_loader") {

TEST_CASE("tree: a dynamic supervisor needs a template and no declared children") {
  auto ok = load_tree_string(R"(
[supervisors.app]
children = ["jobs"]

[supervisors.jobs]
strategy = "dynamic"
template = "job"

[pools.job]
adapter = "a.b.C"
)",
                             "t.toml");
  REQUIRE_MESSAGE(ok, (ok ? "" : describe(ok.error()).message));
  const auto& jobs = ok->root.children.at(0);
  CHECK(jobs.strategy == supervision_strategy::dynamic);
  CHECK(jobs.children.empty());
  REQUIRE(jobs.child_template.size() == 1);
  CHECK(jobs.child_template[0].name == "job");
  CHECK(jobs.max_children == 1000);
  auto problems = check_tree_string(R"(
[supervisors.app]
children = ["jobs", "other"]
template = "x"

[supervisors.jobs]
strategy = "dynamic"
children = ["other"]
max_children = 0

[supervisors.other]
strategy = "dynamic"
template = "ghost"
)",
                                    "t.toml");
  INFO(dump(problems));
  CHECK(contains(problem_at(problems, "supervisors.app.template").message,
                 "only for strategy = \"dynamic\""));
  CHECK(contains(problem_at(problems, "supervisors.jobs.children").message,
                 "no declared children"));
  CHECK(contains(problem_at(problems, "supervisors.jobs").message, "template"));
  CHECK(contains(problem_at(problems, "supervisors.other.template").message,
                 "no supervisor, pool or actor is named \"ghost\""));
}

} // TEST_SUITE("tree_loader")

TEST_CASE("tree: [node] reads its keys and exports only pools of the tree") {
  constexpr auto local_base = "[supervisors.app]\nchildren = [\"ml\"]\n\n[pools.ml]\n"
                        "adapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n";
  auto spec = load_tree_string(std::string{local_base}
                                     + "\n[node]\nname = \"left\"\nlisten = \"127.0.0.1:4711\"\n"
                                       "export = [\"ml\"]\n",
                                   "t.toml");
  REQUIRE(spec);
  CHECK(spec->node.enabled);
  CHECK(spec->node.name == "left");
  CHECK(spec->node.listen == "127.0.0.1:4711");
  CHECK(spec->node.exports == std::vector<std::string>{"ml"});
  CHECK_FALSE(load_tree_string(local_base, "t.toml")->node.enabled);
  auto wrong = load_tree_string(std::string{local_base} + "\n[node]\nexport = [\"nope\"]\n",
                                    "t.toml");
  REQUIRE(!wrong);
  auto text = snakepit::describe(wrong.error()).message;
  CHECK(text.find("exports 'nope', which is not a pool of this tree; its pools: ml")
        != std::string::npos);
  auto bad_listen = load_tree_string(std::string{local_base} + "\n[node]\nlisten = \"4711\"\n",
                                         "t.toml");
  REQUIRE(!bad_listen);
  CHECK(snakepit::describe(bad_listen.error()).message.find("node.listen") != std::string::npos);
  auto tls = load_tree_string(std::string{local_base}
                                + "\n[node]\ntls_cert = \"a.pem\"\ntls_key = \"a.key\"\n"
                                  "tls_ca = \"ca.pem\"\n",
                              "t.toml");
  REQUIRE(tls);
  CHECK(tls->node.tls_cert == "a.pem");
  CHECK(tls->node.tls_key == "a.key");
  CHECK(tls->node.tls_ca == "ca.pem");
  auto part = load_tree_string(std::string{local_base} + "\n[node]\ntls_cert = \"a.pem\"\n", "t.toml");
  REQUIRE(!part);
  auto part_text = snakepit::describe(part.error()).message;
  CHECK(part_text.find("node.tls_key: missing") != std::string::npos);
  CHECK(part_text.find("node.tls_ca: missing") != std::string::npos);
}

TEST_CASE("tree: [remote_pools.NAME] is a pool child on another node") {
  constexpr auto local_base = "[supervisors.app]\nchildren = [\"far\"]\n\n[remote_pools.far]\n";
  auto spec = load_tree_string(std::string{local_base}
                                 + "node = \"10.0.0.5:4710\"\npool = \"ml\"\n"
                                   "heartbeat_interval_ms = 500\nheartbeat_timeout_ms = 2000\n",
                               "t.toml");
  REQUIRE(spec);
  auto& far = spec->root.children.at(0);
  CHECK(far.kind == snakepit::node_kind::pool);
  CHECK(far.remote_node == "10.0.0.5:4710");
  CHECK(far.remote_pool == "ml");
  CHECK(far.heartbeat_timeout == std::chrono::milliseconds{2000});
  CHECK(snakepit::needs_distribution(*spec));
  auto missing = load_tree_string(std::string{local_base} + "pool = \"ml\"\n", "t.toml");
  REQUIRE(!missing);
  CHECK(snakepit::describe(missing.error()).message.find("missing required key 'node'")
        != std::string::npos);
  for (auto bad : {"h:70000", "h:4x", ":4710", "h:"}) {
    auto wrong = load_tree_string(std::string{local_base} + "node = \"" + bad + "\"\n", "t.toml");
    REQUIRE(!wrong);
    CHECK(snakepit::describe(wrong.error()).message.find("port 0 to 65535") != std::string::npos);
  }
  auto adapter = load_tree_string(std::string{local_base} + "node = \"h:1\"\nadapter = \"x.Y\"\n",
                                  "t.toml");
  REQUIRE(!adapter);
  CHECK(snakepit::describe(adapter.error()).message.find("adapter") != std::string::npos);
}

TEST_CASE("tree: [clusters.NAME] spreads over pools of the tree") {
  constexpr auto local_base = "[supervisors.app]\nchildren = [\"ml\", \"far\", \"both\"]\n\n"
                        "[pools.ml]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n\n"
                        "[remote_pools.far]\nnode = \"127.0.0.1:4710\"\npool = \"ml\"\n\n"
                        "[clusters.both]\n";
  auto spec = load_tree_string(std::string{local_base}
                                 + "members = [\"ml\", \"far\"]\nqueue_max = 5\n"
                                   "queue_timeout_ms = 700\naffinity = \"strict_queue\"\n"
                                   "rejoin_backoff_max_ms = 900\n",
                               "t.toml");
  REQUIRE_MESSAGE(spec, (spec ? "" : snakepit::describe(spec.error()).message));
  auto& both = spec->root.children.at(2);
  CHECK(both.kind == node_kind::pool);
  CHECK_FALSE(both.is_local_pool());
  CHECK(both.cluster.members == std::vector<std::string>{"ml", "far"});
  CHECK(both.cluster.queue_max == 5);
  CHECK(both.cluster.queue_timeout == std::chrono::milliseconds{700});
  CHECK(both.cluster.affinity == affinity_mode::strict_queue);
  CHECK(both.cluster.rejoin_backoff.max == std::chrono::milliseconds{900});
  CHECK(both.cluster.rejoin_backoff.min == std::chrono::milliseconds{50});
  CHECK(spec->root.children.at(0).is_local_pool());
  auto unknown = load_tree_string(std::string{local_base} + "members = [\"ml\", \"nope\"]\n", "t.toml");
  REQUIRE(!unknown);
  CHECK(snakepit::describe(unknown.error()).message.find("'nope' is not a pool of this tree")
        != std::string::npos);
  auto nested = load_tree_string(std::string{local_base} + "members = [\"both\"]\n", "t.toml");
  REQUIRE(!nested);
  CHECK(snakepit::describe(nested.error()).message.find("'both' is a cluster")
        != std::string::npos);
  auto none = load_tree_string(std::string{local_base} + "queue_max = 1\n", "t.toml");
  REQUIRE(!none);
  CHECK(snakepit::describe(none.error()).message.find("members") != std::string::npos);
  auto typo = load_tree_string(std::string{local_base} + "members = [\"ml\"]\nadapter = \"x.Y\"\n",
                               "t.toml");
  REQUIRE(!typo);
  CHECK(snakepit::describe(typo.error()).message.find("adapter") != std::string::npos);
}

TEST_CASE("tree: times beyond ten years are refused with the range, not overflowed") {
  auto spec = load_tree_string("[supervisors.app]\nchildren = [\"p\"]\n[pools.p]\nadapter = \"a.B\"\n"
                               "request_timeout_ms = 9223372036854\n",
                               "t.toml");
  REQUIRE(!spec);
  auto text = snakepit::describe(spec.error()).message;
  CHECK(text.find("request_timeout_ms") != std::string::npos);
  CHECK(text.find("at most 315360000000") != std::string::npos);
  // The longest accepted deadline is still in the future.
  auto req = make_request("t", {}, caf::timespan{std::numeric_limits<caf::timespan::rep>::max()});
  CHECK(req.deadline > caf::make_timestamp() + std::chrono::hours{24 * 365});
}

TEST_CASE("tree: hostile nesting is a positioned error, not a stack overflow") {
  auto dotted = [](std::size_t n) {
    std::string key = "a";
    for (std::size_t i = 1; i < n; ++i)
      key += ".a";
    return key;
  };
  auto expect = [](const std::string& text, const std::string& what) {
    auto spec = load_tree_string(text, "t.toml");
    REQUIRE(!spec);
    auto message = snakepit::describe(spec.error()).message;
    CHECK_MESSAGE(message.find(what) != std::string::npos, message);
    CHECK_MESSAGE(message.find("t.toml:") != std::string::npos, message);
  };
  expect("[" + dotted(40000) + "]\n", "more than 64 dotted parts");
  expect("[[" + dotted(40000) + "]]\n", "more than 64 dotted parts");
  expect("x = 1\n" + dotted(5000) + " = 1\n", "more than 64 dotted parts");
  expect("x = { " + dotted(5000) + " = 1 }\n", "more than 64 dotted parts");
  expect("x = " + std::string(50000, '[') + std::string(50000, ']') + "\n", "nested more than 64");
  std::string tables;
  for (int i = 0; i < 50000; ++i)
    tables += "{a = ";
  expect("x = " + tables + "1" + std::string(50000, '}') + "\n", "nested more than 64");
  // Dots and brackets inside strings and comments are text, not structure.
  std::string quoted = "[supervisors.app]\nchildren = [\"p\"]\n# " + dotted(500) + " [[[[\n"
                       "[pools.p]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n"
                       "env = { A = \"" + dotted(500) + "\", B = '[[[[{{{{', C = \"\"\"\n"
                       + dotted(200) + "\n\"\"\" }\n";
  auto ok = load_tree_string(quoted, "t.toml");
  CHECK_MESSAGE(ok, (ok ? "" : snakepit::describe(ok.error()).message));
  // A key of 64 parts and values 64 deep are fine as far as the limits go.
  CHECK(!snakepit::detail::check_toml_limits(dotted(64) + " = " + std::string(64, '[')
                                             + std::string(64, ']') + "\n"));
  CHECK(snakepit::detail::check_toml_limits(dotted(65) + " = 1\n"));
}

TEST_CASE("tree: many wrong names get suggestions for the first hundred only") {
  // Each suggestion is a pass over every name: thousands of wrong names
  // made `check` quadratic (3,000 + 3,000 took a minute).
  std::string text = "[supervisors.app]\nchildren = [";
  for (int i = 0; i < 300; ++i)
    text += (i ? ", \"pool_" : "\"pool_") + std::to_string(i) + "x\"";
  text += "]\n";
  for (int i = 0; i < 300; ++i)
    text += "[pools.pool_" + std::to_string(i) + "]\nadapter = \"a.B\"\n";
  auto spec = load_tree_string(text, "t.toml");
  REQUIRE(!spec);
  auto message = snakepit::describe(spec.error()).message;
  CHECK(message.find("\"pool_0x\" (did you mean 'pool_0'?)") != std::string::npos);
  CHECK(message.find("\"pool_99x\" (did you mean 'pool_99'?)") != std::string::npos);
  CHECK(message.find("\"pool_100x\" (did you mean") == std::string::npos);
  CHECK(message.find("named \"pool_299x\"") != std::string::npos);
}

TEST_CASE("tree: preload is a process-profile pool's boolean") {
  auto tree = [](std::string_view pool) {
    return std::string{"[supervisors.app]\nchildren = [\"p\"]\n\n[pools.p]\nadapter = \"a.B\"\n"}
           + std::string{pool};
  };
  auto spec = load_tree_string(tree("preload = true\n"), "t.toml");
  REQUIRE_MESSAGE(spec, describe(spec.error()).message);
  CHECK(spec->root.children.at(0).pool.preload);
  auto plain = load_tree_string(tree(""), "t.toml");
  REQUIRE(plain);
  CHECK_FALSE(plain->root.children.at(0).pool.preload);
  auto text = tree("preload = \"yes\"\n");
  CHECK(problem_at(check(text), "pools.p.preload").message.find("true or false")
        != std::string::npos);
  text = tree("profile = \"thread\"\npreload = true\n");
  CHECK(problem_at(check(text), "pools.p.preload").message.find("needs profile")
        != std::string::npos);
}

TEST_SUITE("tree_loader") {

TEST_CASE("tree: the crash barrier's keys, their defaults and their bounds") {
  auto spec = load_tree_string(base, "t.toml");
  REQUIRE_MESSAGE(spec, describe(spec.error()).message);
  auto& d = spec->root.children.at(0).pool;
  CHECK(d.retry.max_attempts == 3);
  CHECK(d.retry.backoff_min == 50ms);
  CHECK(d.retry.backoff_max == 1000ms);
  CHECK(d.poison.threshold == 3);
  CHECK(d.poison.ttl == 600000ms);
  CHECK(d.poison.max_entries == 10000);
  CHECK(d.breaker.threshold == 5);
  CHECK(d.breaker.window == 10000ms);
  CHECK(d.breaker.open_time == 5000ms);
  auto set = load_tree_string(with(R"(
retry_max_attempts = 5
retry_backoff_min_ms = 10
retry_backoff_max_ms = 200
poison_threshold = 2
poison_ttl_ms = 1500
poison_max_entries = 64
breaker_threshold = 0
breaker_window_ms = 2000
breaker_open_ms = 750
)"),
                              "t.toml");
  REQUIRE_MESSAGE(set, describe(set.error()).message);
  auto& p = set->root.children.at(0).pool;
  CHECK(p.retry.max_attempts == 5);
  CHECK(p.retry.backoff_min == 10ms);
  CHECK(p.retry.backoff_max == 200ms);
  CHECK(p.poison.threshold == 2);
  CHECK(p.poison.ttl == 1500ms);
  CHECK(p.poison.max_entries == 64);
  CHECK(p.breaker.threshold == 0);
  CHECK(p.breaker.window == 2000ms);
  CHECK(p.breaker.open_time == 750ms);
  for (auto bad : {"retry_max_attempts = 0\n", "retry_max_attempts = 101\n",
                   "poison_ttl_ms = 0\n", "poison_max_entries = 0\n", "breaker_window_ms = 0\n",
                   "breaker_open_ms = 0\n",
                   "retry_backoff_min_ms = 500\nretry_backoff_max_ms = 100\n"}) {
    auto problems = check(with(bad));
    INFO(bad << dump(problems));
    CHECK(problems.size() == 1);
  }
}

} // TEST_SUITE
