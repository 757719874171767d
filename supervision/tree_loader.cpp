#include "snakepit/node/host_port.hpp"
#include "snakepit/supervision/detail/toml_limits.hpp"
#include "snakepit/supervision/tree_loader.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <system_error>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include <arpa/inet.h>

#include "snakepit/actors/python_command.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/supervision/actor_registry.hpp"

namespace snakepit {

namespace {

// -- limits -------------------------------------------------------------------

/// Longest time a key may hold (ten years): beyond it, now + the time would
/// overflow `caf::timestamp` (`max_timeout`, execute_request.hpp).
constexpr std::int64_t max_ms = max_timeout.count();

constexpr std::int64_t max_u32 = std::numeric_limits<std::uint32_t>::max();

// -- the schema ---------------------------------------------------------------

using word_list = std::vector<std::string_view>;

// [plugins] is read before the tree (plugin_loader.hpp): it decides which
// actor kinds exist.
const word_list top_level_keys = {"root",    "supervisors", "pools", "remote_pools",
                                  "clusters", "actors",  "logging",
                                  "metrics", "gateway", "plugins", "node"};

const word_list node_keys = {"name",     "listen",  "export", "insecure",
                             "tls_cert", "tls_key", "tls_ca"};
const word_list remote_pool_keys = {"node", "pool", "heartbeat_interval_ms",
                                    "heartbeat_timeout_ms", "restart", "connect_timeout_ms"};
const word_list cluster_keys = {"members",           "queue_max",
                                "queue_timeout_ms",  "request_timeout_ms",
                                "affinity",          "status_interval_ms",
                                "rejoin_backoff_min_ms", "rejoin_backoff_max_ms",
                                "restart"};
const word_list gateway_keys = {"enabled",   "listen",  "insecure",
                                "tls_cert",  "tls_key", "tls_client_ca",
                                "token_file", "max_calls", "max_calls_per_client",
                                "max_message_bytes"};

const word_list logging_keys = {"level", "format"};

const word_list metrics_keys = {"enabled",
                                "bind",
                                "port",
                                "path",
                                "max_connections",
                                "max_connections_per_client",
                                "request_timeout_ms",
                                "write_timeout_ms",
                                "token_file"};

const word_list log_level_words = {"debug", "info", "warning", "error", "off"};

const word_list log_format_words = {"text", "json"};

const word_list supervisor_keys = {
  "strategy",         "max_restarts", "max_seconds",
  "restart_backoff_min_ms", "restart_backoff_max_ms", "children",
  "restart",          "shutdown",     "significant", "auto_shutdown",
  "template",         "max_children",
};

const word_list pool_keys = {
  "adapter",          "size",          "min_ready",
  "profile",          "threads_per_worker", "thread_check",
  "worker_ttl_ms",    "worker_max_requests", "worker_max_requests_jitter",
  "worker_max_rss_bytes", "lifecycle_interval_ms", "max_concurrent_recycles",
  "drain_timeout_ms", "deadline_policy", "health_interval_ms", "health_timeout_ms",
  "health_max_missed", "python_event_buffer", "stream_window", "affinity", "session_ttl_ms", "max_sessions",
  "python",           "python_path",   "env",
  "startup_concurrency", "startup_timeout_ms", "queue_max",
  "queue_timeout_ms", "request_timeout_ms", "deadline_grace_ms",
  "max_payload_bytes", "shutdown_timeout_ms", "max_restarts",
  "max_seconds",      "restart_backoff_min_ms", "restart_backoff_max_ms",
  "restart",          "shutdown",     "significant",
  "transport",        "batch_max_calls", "batch_max_bytes", "batch_max_unanswered",
  "shared_memory",    "shm_threshold",   "shm_bytes_max",   "shm_cache_bytes",
  "retry_max_attempts", "retry_backoff_min_ms", "retry_backoff_max_ms",
  "poison_threshold", "poison_ttl_ms", "poison_max_entries",
  "breaker_threshold", "breaker_window_ms", "breaker_open_ms",
  "pipeline_depth",   "pipeline_budget_ms",
  "min_size",         "max_size",        "scale_up_wait_ms", "scale_busy_threshold",
  "scale_busy_window_ms", "idle_timeout_ms", "scale_max_step", "scale_up_cooldown_ms",
  "scale_down_cooldown_ms", "cpu_affinity", "preload",
};

const word_list actor_keys = {"kind",        "args",            "restart", "shutdown",
                              "significant", "start_timeout_ms"};

const word_list auto_shutdown_words = {"never", "any_significant", "all_significant"};

const word_list strategy_words = {"one_for_one", "one_for_all", "rest_for_one", "dynamic"};

const word_list restart_words = {"permanent", "transient", "temporary"};

const word_list profile_words = {"process", "thread"};

const word_list deadline_policy_words = {"kill", "wait"};

const word_list affinity_words = {"hint", "strict_queue", "strict_fail_fast"};

const word_list transport_words = {"batches", "unary"};

const word_list thread_check_words = {"off", "warn", "strict"};

const word_list shutdown_words = {"brutal_kill", "infinity"};

const char* section_of(node_kind k) {
  switch (k) {
    case node_kind::supervisor:
      return "supervisors";
    case node_kind::pool:
      return "pools";
    case node_kind::actor:
      return "actors";
  }
  return "?";
}

const char* kind_word(node_kind k) {
  switch (k) {
    case node_kind::supervisor:
      return "supervisor";
    case node_kind::pool:
      return "pool";
    case node_kind::actor:
      return "actor";
  }
  return "?";
}

const word_list& keys_of(node_kind k) {
  switch (k) {
    case node_kind::supervisor:
      return supervisor_keys;
    case node_kind::pool:
      return pool_keys;
    case node_kind::actor:
      return actor_keys;
  }
  return actor_keys;
}

// -- words for describe_tree ---------------------------------------------------

const char* strategy_word(supervision_strategy x) {
  switch (x) {
    case supervision_strategy::one_for_one:
      return "one_for_one";
    case supervision_strategy::one_for_all:
      return "one_for_all";
    case supervision_strategy::rest_for_one:
      return "rest_for_one";
    case supervision_strategy::dynamic:
      return "dynamic";
  }
  return "?";
}

const char* restart_word(restart_type x) {
  switch (x) {
    case restart_type::permanent:
      return "permanent";
    case restart_type::transient:
      return "transient";
    case restart_type::temporary:
      return "temporary";
  }
  return "?";
}

std::string number_text(caf::timespan t, std::int64_t unit_ns) {
  if (t.count() % unit_ns == 0)
    return std::to_string(t.count() / unit_ns);
  return fmt::format("{}", static_cast<double>(t.count()) / static_cast<double>(unit_ns));
}

std::string ms_text(caf::timespan t) {
  return number_text(t, 1'000'000) + " ms";
}

std::string seconds_text(caf::timespan t) {
  return number_text(t, 1'000'000'000) + " s";
}

std::string shutdown_text(const shutdown_policy& x) {
  switch (x.mode) {
    case shutdown_policy::kind::brutal_kill:
      return "brutal_kill";
    case shutdown_policy::kind::infinity:
      return "infinity";
    case shutdown_policy::kind::timeout:
      return ms_text(x.timeout);
  }
  return "?";
}

// -- text helpers ---------------------------------------------------------------

/// `"text"` with quotes and control characters escaped, cut after 60 bytes.
std::string quote(std::string_view s) {
  constexpr std::size_t max_len = 60;
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < max_len; ++i) {
    auto c = s[i];
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        else
          out += c;
    }
  }
  if (s.size() > max_len)
    out += "...";
  out += '"';
  return out;
}

/// A key as it appears in a dotted TOML path: bare when it can be, else quoted.
std::string key_segment(std::string_view key) {
  auto bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
  return bare ? std::string{key} : quote(key);
}

std::string join_words(const word_list& words, std::string_view last_sep = " or ") {
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0)
      out += i + 1 == words.size() ? last_sep : std::string_view{", "};
    out += words[i];
  }
  return out;
}

/// Optimal string alignment distance (an adjacent swap costs 1), ignoring
/// case; anything above `limit` comes back as `limit + 1` (and is found
/// early: a row whose every cell is above the limit ends the work). Three
/// rolling rows, no allocation per call beyond them.
std::size_t edit_distance(std::string_view a, std::string_view b,
                          std::size_t limit = std::numeric_limits<std::size_t>::max() - 1) {
  auto lower = [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  };
  auto gap = a.size() > b.size() ? a.size() - b.size() : b.size() - a.size();
  if (gap > limit)
    return limit + 1;
  std::vector<std::size_t> before(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    auto row_min = cur[0];
    for (std::size_t j = 1; j <= b.size(); ++j) {
      auto cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0u : 1u;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2])
          && lower(a[i - 2]) == lower(b[j - 1]))
        cur[j] = std::min(cur[j], before[j - 2] + 1);
      row_min = std::min(row_min, cur[j]);
    }
    if (row_min > limit)
      return limit + 1;
    std::swap(before, prev);
    std::swap(prev, cur);
  }
  return std::min(prev[b.size()], limit + 1);
}

/// The candidate closest to `word` within a few edits (or that `word` starts),
/// if any.
template <class Words>
std::optional<std::string_view> closest(std::string_view word, const Words& candidates) {
  constexpr std::size_t max_len = 64;
  if (word.size() > max_len)
    return std::nullopt;
  std::optional<std::string_view> best;
  auto best_distance = std::numeric_limits<std::size_t>::max();
  for (const auto& candidate : candidates) {
    std::string_view c{candidate};
    if (c == word || c.size() > max_len)
      continue;
    auto allowed = std::max<std::size_t>(1, std::min(word.size(), c.size()) / 3);
    // A word cut short ("brutal" for "brutal_kill") also counts as close.
    bool cut_short = word.size() >= 3 && c.size() > word.size()
                     && edit_distance(word, c.substr(0, word.size()), 0) == 0;
    auto d = edit_distance(word, c, allowed);
    if (cut_short)
      d = std::min(d, allowed);
    if (d <= allowed && d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

/// ` (did you mean 'x'?)` for the closest candidate, else "".
template <class Words>
std::string did_you_mean(std::string_view word, const Words& candidates) {
  if (auto best = closest(word, candidates))
    return fmt::format(" (did you mean '{}'?)", *best);
  return {};
}

std::string_view type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::none:
      return "nothing";
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return n.as_array()->is_array_of_tables() ? "array of tables" : "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
  }
  return "?";
}

template <class T>
std::string stream_text(const T& x) {
  std::ostringstream out;
  out << x;
  return out.str();
}

/// What a node holds, for "got ...": its type and, for scalars, its value.
std::string describe_got(const toml::node& n) {
  auto type = std::string{type_name(n)};
  if (auto s = n.as_string())
    return type + " " + quote(s->get());
  if (auto i = n.as_integer())
    return type + " " + std::to_string(i->get());
  if (auto f = n.as_floating_point())
    return type + " " + fmt::format("{}", f->get());
  if (auto b = n.as_boolean())
    return type + (b->get() ? " true" : " false");
  if (auto d = n.as_date())
    return type + " " + stream_text(d->get());
  if (auto t = n.as_time())
    return type + " " + stream_text(t->get());
  if (auto dt = n.as_date_time())
    return type + " " + stream_text(dt->get());
  return type;
}

/// A TOML value as a `value`: integers stay int64, dates and times become strings.
value to_value(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::none:
      return value{};
    case toml::node_type::string:
      return value(n.as_string()->get());
    case toml::node_type::integer:
      return value(n.as_integer()->get());
    case toml::node_type::floating_point:
      return value(n.as_floating_point()->get());
    case toml::node_type::boolean:
      return value(n.as_boolean()->get());
    case toml::node_type::date:
      return value(stream_text(n.as_date()->get()));
    case toml::node_type::time:
      return value(stream_text(n.as_time()->get()));
    case toml::node_type::date_time:
      return value(stream_text(n.as_date_time()->get()));
    case toml::node_type::array: {
      value::list xs;
      for (const auto& x : *n.as_array())
        xs.push_back(to_value(x));
      return value(std::move(xs));
    }
    case toml::node_type::table: {
      value::map xs;
      for (const auto& [k, v] : *n.as_table())
        xs.emplace(std::string{k.str()}, to_value(v));
      return value(std::move(xs));
    }
  }
  return value{};
}

/// Where `word` first occurs in `text` as a whole word (letters, digits, `_`), or npos.
std::size_t find_word(std::string_view text, std::string_view word) {
  auto is_word_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  };
  for (auto pos = text.find(word); pos != std::string_view::npos;
       pos = text.find(word, pos + 1)) {
    auto end = pos + word.size();
    if ((pos == 0 || !is_word_char(text[pos - 1]))
        && (end == text.size() || !is_word_char(text[end])))
      return pos;
  }
  return std::string_view::npos;
}

/// A Python dotted path: identifiers separated by single dots, at least two.
bool is_dotted_python_path(std::string_view path) {
  std::size_t parts = 0;
  std::size_t start = 0;
  while (true) {
    auto dot = path.find('.', start);
    auto part = path.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (part.empty())
      return false;
    auto first = static_cast<unsigned char>(part.front());
    if (std::isdigit(first))
      return false;
    for (char c : part) {
      auto u = static_cast<unsigned char>(c);
      if (!(std::isalnum(u) || c == '_' || u >= 0x80))
        return false;
    }
    ++parts;
    if (dot == std::string_view::npos)
      break;
    start = dot + 1;
  }
  return parts >= 2;
}

/// What a server can bind without a name lookup: an IPv4 or IPv6 literal, or
/// "localhost".
bool is_bind_address(const std::string& address) {
  if (address == "localhost")
    return true;
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, address.c_str(), buf) == 1
         || inet_pton(AF_INET6, address.c_str(), buf) == 1;
}

/// A path an HTTP request line can carry as is: '/' first, then no spaces,
/// control characters, query or fragment.
bool is_url_path(std::string_view path) {
  return !path.empty() && path.front() == '/'
         && std::none_of(path.begin(), path.end(), [](char c) {
              auto u = static_cast<unsigned char>(c);
              return u <= ' ' || u == 0x7f || c == '?' || c == '#';
            });
}

/// `http://ADDRESS:PORT/PATH`, with an IPv6 address in brackets.
std::string endpoint_url(const metrics_spec& m) {
  auto host = m.bind.find(':') == std::string::npos ? m.bind : "[" + m.bind + "]";
  auto port = m.port == 0 ? std::string{"<any free port>"} : std::to_string(m.port);
  return fmt::format("http://{}:{}{}", host, port, m.path);
}

// -- problems -----------------------------------------------------------------

class problem_list {
public:
  explicit problem_list(std::string file) : file_(std::move(file)) {
    // nop
  }

  const std::string& file() const noexcept {
    return file_;
  }

  source_position position(const toml::source_region& src) const {
    return {file_, static_cast<int>(src.begin.line), static_cast<int>(src.begin.column)};
  }

  void add(source_position where, std::string key_path, std::string message) {
    list_.push_back({std::move(where), std::move(key_path), std::move(message)});
  }

  bool empty() const noexcept {
    return list_.empty();
  }

  /// The problems in file order.
  std::vector<config_problem> take() {
    std::stable_sort(list_.begin(), list_.end(), [](const auto& x, const auto& y) {
      return std::tie(x.where.line, x.where.column) < std::tie(y.where.line, y.where.column);
    });
    return std::move(list_);
  }

private:
  std::string file_;
  std::vector<config_problem> list_;
};

// -- one [section.NAME] table ----------------------------------------------------

/// Reads the keys of one table, reporting problems with their key paths.
/// A missing key yields `std::nullopt` and no problem; a key with a problem
/// is remembered as failed.
class section {
public:
  section(const toml::table& tbl, std::string path, problem_list& problems)
    : tbl_(tbl), path_(std::move(path)), problems_(problems) {
    // nop
  }

  std::string path_of(std::string_view key) const {
    return path_ + "." + key_segment(key);
  }

  const toml::node* get(std::string_view key) const {
    return tbl_.get(key);
  }

  source_position where() const {
    return problems_.position(tbl_.source());
  }

  source_position where(std::string_view key) const {
    auto node = get(key);
    return node ? problems_.position(node->source()) : where();
  }

  /// A problem with `key`, at its value (or the table when the key is missing).
  void problem(std::string_view key, std::string message) {
    failed_.emplace(key);
    problems_.add(where(key), path_of(key), std::move(message));
  }

  /// A problem with the table as a whole.
  void problem_here(std::string message) {
    problems_.add(where(), path_, std::move(message));
  }

  void mark_failed(std::string_view key) {
    failed_.emplace(key);
  }

  bool failed(std::string_view key) const {
    return failed_.count(key) > 0;
  }

  /// Reports a missing required key at the table; true when present.
  bool require(std::string_view key, std::string_view expected) {
    if (get(key) != nullptr)
      return true;
    failed_.emplace(key);
    problem_here(fmt::format("missing required key '{}' ({})", key, expected));
    return false;
  }

  /// Reports every key of a node not in its schema, at the key itself.
  void check_keys(node_kind kind) {
    const auto& allowed = keys_of(kind);
    report_unknown_keys(allowed, [&](std::string_view key) {
      auto msg = fmt::format("unknown key '{}' in a {}", key, kind_word(kind));
      if (key == "name") {
        msg += fmt::format("; its name is the section name, as in [{}.NAME]", section_of(kind));
      } else if (auto hint = did_you_mean(key, allowed); !hint.empty()) {
        msg += hint;
      } else {
        for (auto other : {node_kind::supervisor, node_kind::pool, node_kind::actor}) {
          const auto& keys = keys_of(other);
          if (other != kind && std::find(keys.begin(), keys.end(), key) != keys.end()) {
            msg += fmt::format(" (it is a key of {})", section_of(other));
            break;
          }
        }
        msg += fmt::format("; expected one of {}", join_words(allowed));
      }
      return msg;
    });
  }

  /// Reports every key of a settings table (`[logging]`) not in `allowed`.
  void check_keys(const word_list& allowed, std::string_view table) {
    report_unknown_keys(allowed, [&](std::string_view key) {
      auto hint = did_you_mean(key, allowed);
      if (hint.empty())
        hint = fmt::format("; expected one of {}", join_words(allowed));
      return fmt::format("unknown key '{}' in [{}]{}", key, table, hint);
    });
  }

  /// Reports each key not in `allowed` at the key, with the message `say(key)`.
  template <class Say>
  void report_unknown_keys(const word_list& allowed, Say say) {
    for (const auto& [k, v] : tbl_) {
      auto key = k.str();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        problems_.add(problems_.position(k.source()), path_of(key), say(key));
    }
  }

  std::optional<std::string> string(std::string_view key, std::string_view expected) {
    auto node = get(key);
    if (node == nullptr)
      return std::nullopt;
    auto s = node->as_string();
    if (s == nullptr || s->get().empty()) {
      problem(key, fmt::format("expected {}, got {}", expected, describe_got(*node)));
      return std::nullopt;
    }
    return s->get();
  }

  std::optional<bool> boolean(std::string_view key) {
    auto node = get(key);
    if (node == nullptr)
      return std::nullopt;
    if (auto b = node->as_boolean())
      return b->get();
    problem(key, fmt::format("expected true or false, got {}", describe_got(*node)));
    return std::nullopt;
  }

  std::optional<std::int64_t> integer(std::string_view key, std::int64_t min,
                                      std::int64_t max, std::string_view expected) {
    auto node = get(key);
    if (node == nullptr)
      return std::nullopt;
    auto i = node->as_integer();
    if (i == nullptr) {
      problem(key, fmt::format("expected {}, got {}", expected, describe_got(*node)));
      return std::nullopt;
    }
    auto x = i->get();
    if (x < min || x > max) {
      auto bound = x > max ? fmt::format(" of at most {}", max) : std::string{};
      problem(key, fmt::format("expected {}{}, got {}", expected, bound, x));
      return std::nullopt;
    }
    return x;
  }

  /// A number in (0, 1] (an integer 1 is accepted).
  std::optional<double> fraction(std::string_view key) {
    auto node = get(key);
    if (node == nullptr)
      return std::nullopt;
    std::optional<double> x;
    if (auto f = node->as_floating_point())
      x = f->get();
    else if (auto i = node->as_integer())
      x = static_cast<double>(i->get());
    if (!x || !(*x > 0 && *x <= 1)) {
      problem(key, fmt::format("expected a fraction above 0 and at most 1 (e.g. 0.9), got {}",
                               describe_got(*node)));
      return std::nullopt;
    }
    return x;
  }

  std::optional<std::uint32_t> count(std::string_view key, std::int64_t min,
                                     std::int64_t max, std::string_view expected) {
    if (auto x = integer(key, min, max, expected))
      return static_cast<std::uint32_t>(*x);
    return std::nullopt;
  }

  /// An integer number of milliseconds, >= 0 or > 0.
  std::optional<caf::timespan> millis(std::string_view key, bool positive) {
    auto expected = positive ? "a positive integer (milliseconds)"
                             : "an integer >= 0 (milliseconds)";
    if (auto x = integer(key, positive ? 1 : 0, max_ms, expected))
      return std::chrono::milliseconds{*x};
    return std::nullopt;
  }

  /// A positive number of seconds, int or float (sub-second allowed).
  std::optional<caf::timespan> seconds(std::string_view key) {
    auto node = get(key);
    if (node == nullptr)
      return std::nullopt;
    constexpr auto expected = "a positive number of seconds (integer or float)";
    double x = 0;
    if (auto i = node->as_integer()) {
      x = static_cast<double>(i->get());
    } else if (auto f = node->as_floating_point()) {
      x = f->get();
    } else {
      problem(key, fmt::format("expected {}, got {}", expected, describe_got(*node)));
      return std::nullopt;
    }
    auto max_s = static_cast<double>(max_ms) / 1000.0;
    auto ns = x * 1e9;
    if (!(x > 0) || !(x <= max_s) || ns < 1.0) {
      problem(key, fmt::format("expected {}, got {}", expected, describe_got(*node)));
      return std::nullopt;
    }
    return caf::timespan{static_cast<caf::timespan::rep>(ns)};
  }

  /// One of `words`, with a suggestion when the string is close to one.
  std::optional<std::string> word(std::string_view key, const word_list& words) {
    auto node = get(key);
    if (node == nullptr)
      return std::nullopt;
    auto expected = "one of " + join_words(words);
    auto s = node->as_string();
    if (s == nullptr) {
      problem(key, fmt::format("expected {}, got {}", expected, describe_got(*node)));
      return std::nullopt;
    }
    if (std::find(words.begin(), words.end(), s->get()) == words.end()) {
      problem(key, fmt::format("expected {}, got {}{}", expected, quote(s->get()),
                               did_you_mean(s->get(), words)));
      return std::nullopt;
    }
    return s->get();
  }

  std::optional<restart_type> restart() {
    auto w = word("restart", restart_words);
    if (!w)
      return std::nullopt;
    if (*w == "transient")
      return restart_type::transient;
    if (*w == "temporary")
      return restart_type::temporary;
    return restart_type::permanent;
  }

  std::optional<supervision_strategy> strategy() {
    auto w = word("strategy", strategy_words);
    if (!w)
      return std::nullopt;
    if (*w == "one_for_all")
      return supervision_strategy::one_for_all;
    if (*w == "rest_for_one")
      return supervision_strategy::rest_for_one;
    if (*w == "dynamic")
      return supervision_strategy::dynamic;
    return supervision_strategy::one_for_one;
  }

  /// An integer of milliseconds, "brutal_kill", or (unless `kind` is an actor)
  /// "infinity".
  std::optional<shutdown_policy> shutdown(node_kind kind) {
    auto node = get("shutdown");
    if (node == nullptr)
      return std::nullopt;
    (void) kind;  // every kind may wait forever (for an actor: documented as risky)
    auto expected = "an integer >= 0 (milliseconds), \"brutal_kill\" or \"infinity\"";
    if (node->is_integer()) {
      if (auto x = integer("shutdown", 0, max_ms, expected))
        return shutdown_policy::after(std::chrono::milliseconds{*x});
      return std::nullopt;
    }
    auto s = node->as_string();
    if (s == nullptr) {
      problem("shutdown", fmt::format("expected {}, got {}", expected, describe_got(*node)));
      return std::nullopt;
    }
    const auto& w = s->get();
    if (w == "brutal_kill")
      return shutdown_policy::brutal_kill();
    if (w == "infinity")
      return shutdown_policy::infinity();
    problem("shutdown", fmt::format("expected {}, got {}{}", expected, quote(w),
                                    did_you_mean(w, shutdown_words)));
    return std::nullopt;
  }

  /// An array of non-empty strings.
  std::optional<std::vector<std::string>> string_list(std::string_view key) {
    auto node = get(key);
    if (node == nullptr)
      return std::nullopt;
    auto arr = node->as_array();
    if (arr == nullptr) {
      problem(key, fmt::format("expected an array of strings, got {}", describe_got(*node)));
      return std::nullopt;
    }
    std::vector<std::string> out;
    auto ok = true;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const auto& x = *arr->get(i);
      auto s = x.as_string();
      if (s == nullptr || s->get().empty()) {
        ok = false;
        failed_.emplace(key);
        problems_.add(problems_.position(x.source()),
                      fmt::format("{}[{}]", path_of(key), i),
                      fmt::format("expected a non-empty string, got {}", describe_got(x)));
        continue;
      }
      out.push_back(s->get());
    }
    if (!ok)
      return std::nullopt;
    return out;
  }

  /// A table of strings (in key order).
  std::optional<std::vector<std::pair<std::string, std::string>>>
  string_table(std::string_view key) {
    auto node = get(key);
    if (node == nullptr)
      return std::nullopt;
    auto tbl = node->as_table();
    if (tbl == nullptr) {
      problem(key, fmt::format("expected a table of strings, got {}", describe_got(*node)));
      return std::nullopt;
    }
    std::vector<std::pair<std::string, std::string>> out;
    auto ok = true;
    for (const auto& [k, v] : *tbl) {
      auto s = v.as_string();
      if (s == nullptr) {
        ok = false;
        failed_.emplace(key);
        problems_.add(problems_.position(v.source()),
                      path_of(key) + "." + key_segment(k.str()),
                      fmt::format("expected a string, got {}", describe_got(v)));
        continue;
      }
      out.emplace_back(std::string{k.str()}, s->get());
    }
    if (!ok)
      return std::nullopt;
    return out;
  }

private:
  const toml::table& tbl_;
  std::string path_;
  problem_list& problems_;
  std::set<std::string, std::less<>> failed_;
};

template <class T, class U>
void assign(T& field, const std::optional<U>& x) {
  if (x)
    field = static_cast<T>(*x);
}

// -- the whole file ---------------------------------------------------------------

struct child_ref {
  std::string name;
  std::string key_path;
  source_position where;
};

struct definition {
  /// Kind, name, key path and position are set; so are the fields read so far.
  tree_node node;
  /// Supervisors only, in declared order.
  std::vector<child_ref> children;
  /// Another definition came first with the same name.
  bool duplicate = false;
};

class loader {
public:
  loader(std::string file, const actor_registry* registry)
    : problems_(std::move(file)), registry_(registry) {
    // nop
  }

  problem_list& problems() noexcept {
    return problems_;
  }

  /// A cluster's members must be pools of the tree, not clusters.
  void check_clusters(const tree_node& node, const std::vector<std::string>& pools) {
    for (auto& name : node.cluster.members) {
      auto path = node.key_path + ".members";
      if (std::find(pools.begin(), pools.end(), name) == pools.end())
        problems_.add(node.where, path,
                      fmt::format("'{}' is not a pool of this tree; its pools: {}", name,
                                  fmt::join(pools, ", ")));
      else if (auto* member = find_node(root_node_, name); member && !member->cluster.members.empty())
        problems_.add(node.where, path,
                      fmt::format("'{}' is a cluster: a cluster's members are pools", name));
    }
    for (auto& child : node.children)
      check_clusters(child, pools);
  }

  static const tree_node* find_node(const tree_node* node, const std::string& name) {
    if (node == nullptr)
      return nullptr;
    if (node->name == name)
      return node;
    for (auto& child : node->children)
      if (auto* found = find_node(&child, name))
        return found;
    return nullptr;
  }

  const tree_node* root_node_ = nullptr;

  /// Reads and checks the document; returns the tree when nothing is wrong.
  std::optional<tree_spec> run(const toml::table& doc) {
    read_top_level(doc);
    link();
    if (!problems_.empty() || !root_)
      return std::nullopt;
    tree_spec spec;
    spec.source = problems_.file();
    spec.root = build(*root_);
    root_node_ = &spec.root;
    spec.logging = logging_;
    spec.metrics = metrics_;
    spec.gateway = gateway_;
    spec.node = node_;
    auto pools = pool_names(spec.root);
    check_clusters(spec.root, pools);
    for (auto& name : node_.exports)
      if (std::find(pools.begin(), pools.end(), name) == pools.end())
        problems_.add(source_position{}, "node.export",
                      fmt::format("exports '{}', which is not a pool of this tree; its pools: {}",
                                  name, fmt::join(pools, ", ")));
    if (!problems_.empty())
      return std::nullopt;
    return spec;
  }

private:
  // -- reading ------------------------------------------------------------------

  void read_top_level(const toml::table& doc) {
    for (const auto& [k, v] : doc) {
      auto key = k.str();
      if (std::find(top_level_keys.begin(), top_level_keys.end(), key)
          != top_level_keys.end())
        continue;
      problems_.add(problems_.position(k.source()), key_segment(key),
                    fmt::format("unknown top-level key '{}'{}; expected root, [supervisors.NAME], "
                                "[pools.NAME], [remote_pools.NAME], [actors.NAME], [logging], "
                                "[metrics], [gateway], [node] or [plugins]",
                                key, did_you_mean(key, top_level_keys)));
    }
    if (auto node = doc.get("root")) {
      auto s = node->as_string();
      if (s == nullptr || s->get().empty())
        problems_.add(problems_.position(node->source()), "root",
                      fmt::format("expected the name of the root supervisor (a string), got {}",
                                  describe_got(*node)));
      else
        root_name_.emplace(s->get(), problems_.position(node->source()));
    }
    read_sections(doc, node_kind::supervisor);
    read_sections(doc, node_kind::pool);
    read_sections(doc, node_kind::pool, "remote_pools");
    read_sections(doc, node_kind::pool, "clusters");
    read_sections(doc, node_kind::actor);
    read_settings(doc, "logging", logging_keys, [this](section& s) { read_logging(s); });
    read_settings(doc, "metrics", metrics_keys, [this](section& s) { read_metrics(s); });
    read_settings(doc, "gateway", gateway_keys, [this](section& s) { read_gateway(s); });
    read_settings(doc, "node", node_keys, [this](section& s) { read_node(s); });
  }

  /// Checks the top-level table `key` (`[logging]`), if any, against `keys`,
  /// then hands it to `read`.
  template <class Read>
  void read_settings(const toml::table& doc, std::string_view key, const word_list& keys,
                     Read read) {
    auto node = doc.get(key);
    if (node == nullptr)
      return;
    auto tbl = node->as_table();
    if (tbl == nullptr) {
      problems_.add(problems_.position(node->source()), std::string{key},
                    fmt::format("expected a table ([{}]), got {}", key, describe_got(*node)));
      return;
    }
    section s{*tbl, std::string{key}, problems_};
    s.check_keys(keys, key);
    read(s);
  }

  void read_logging(section& s) {
    if (auto w = s.word("level", log_level_words))
      logging_.level = parse_log_level(*w);
    if (auto w = s.word("format", log_format_words))
      logging_.format = parse_log_format(*w);
  }

  void read_node(section& s) {
    auto& n = node_;
    n.enabled = true;
    assign(n.name, s.string("name", "a non-empty name"));
    if (auto listen = s.string("listen", "\"host:port\"")) {
      if (split_host_port(*listen))
        n.listen = *listen;
      else
        s.problem("listen", fmt::format("expected \"host:port\" (port 0 to 65535), got {}",
                                        quote(*listen)));
    }
    if (auto names = s.string_list("export"))
      n.exports = *names;
    assign(n.insecure, s.boolean("insecure"));
    assign(n.tls_cert, s.string("tls_cert", "a non-empty file path"));
    assign(n.tls_key, s.string("tls_key", "a non-empty file path"));
    assign(n.tls_ca, s.string("tls_ca", "a non-empty file path"));
    bool any = !n.tls_cert.empty() || !n.tls_key.empty() || !n.tls_ca.empty();
    if (any)
      for (auto [key, value] : {std::pair{"tls_cert", &n.tls_cert}, std::pair{"tls_key", &n.tls_key},
                                std::pair{"tls_ca", &n.tls_ca}})
        if (value->empty())
          s.problem(key, fmt::format("missing: nodes authenticate each other, so TLS needs "
                                     "tls_cert, tls_key and tls_ca together"));
  }

  void read_gateway(section& s) {
    auto& g = gateway_;
    assign(g.enabled, s.boolean("enabled"));
    if (auto listen = s.string("listen", "\"unix:/path\" or \"host:port\"")) {
      if (listen->rfind("unix:/", 0) == 0 || listen->rfind(':') != std::string::npos)
        g.listen = *listen;
      else
        s.problem("listen", fmt::format("expected \"unix:/path\" or \"host:port\", got {}",
                                        quote(*listen)));
    }
    assign(g.insecure, s.boolean("insecure"));
    assign(g.tls_cert, s.string("tls_cert", "a non-empty file path"));
    assign(g.tls_key, s.string("tls_key", "a non-empty file path"));
    assign(g.tls_client_ca, s.string("tls_client_ca", "a non-empty file path"));
    assign(g.token_file, s.string("token_file", "a non-empty file path"));
    assign(g.max_calls, s.integer("max_calls", 1, 1 << 20, "a call count (at least 1)"));
    assign(g.max_calls_per_client,
           s.integer("max_calls_per_client", 1, 1 << 20, "a call count (at least 1)"));
    assign(g.max_message_bytes,
           s.integer("max_message_bytes", 1024, (1LL << 31) - 1, "bytes (1024 to 2147483647)"));
  }

  void read_metrics(section& s) {
    auto& m = metrics_;
    assign(m.enabled, s.boolean("enabled"));
    constexpr auto bind_text = "an IPv4 or IPv6 address, or \"localhost\"";
    if (auto bind = s.string("bind", bind_text)) {
      if (is_bind_address(*bind)) {
        m.bind = *bind;
      } else {
        // "[::1]" is how a URL writes it, not an address.
        auto bare = bind->size() > 2 && bind->front() == '[' && bind->back() == ']'
                      ? bind->substr(1, bind->size() - 2)
                      : std::string{};
        auto hint = !bare.empty() && is_bind_address(bare)
                      ? fmt::format(" (write an IPv6 address without brackets: {})",
                                    quote(bare))
                      : std::string{};
        s.problem("bind", fmt::format("expected {}, got {}{}", bind_text, quote(*bind), hint));
      }
    }
    assign(m.port, s.integer("port", 0, 65535, "a port number"));
    assign(m.token_file, s.string("token_file", "a non-empty file path"));
    assign(m.max_connections, s.integer("max_connections", 1, 65536, "a connection count (at least 1)"));
    assign(m.max_connections_per_client,
           s.integer("max_connections_per_client", 1, 65536, "a connection count (at least 1)"));
    assign(m.request_timeout_ms,
           s.integer("request_timeout_ms", 100, 600000, "milliseconds (100 to 600000)"));
    assign(m.write_timeout_ms,
           s.integer("write_timeout_ms", 100, 600000, "milliseconds (100 to 600000)"));
    constexpr auto path_text = "a URL path starting with '/' (no spaces, '?' or '#')";
    if (auto path = s.string("path", path_text)) {
      if (is_url_path(*path)) {
        m.path = *path;
      } else {
        auto hint = is_url_path("/" + *path)
                      ? fmt::format(" (did you mean {}?)", quote("/" + *path))
                      : std::string{};
        s.problem("path", fmt::format("expected {}, got {}{}", path_text, quote(*path), hint));
      }
    }
  }

  /// `table`: "remote_pools" or "clusters", pools of another kind.
  void read_sections(const toml::table& doc, node_kind kind, const char* table = nullptr) {
    auto key = table != nullptr ? table : section_of(kind);
    auto node = doc.get(key);
    if (node == nullptr)
      return;
    auto tbl = node->as_table();
    if (tbl == nullptr) {
      if (kind == node_kind::supervisor)
        supervisors_unknown_ = true;
      problems_.add(problems_.position(node->source()), key,
                    fmt::format("expected a table with one [{}.NAME] per {}, got {}", key,
                                kind_word(kind), describe_got(*node)));
      return;
    }
    for (const auto& [k, v] : *tbl) {
      auto name = std::string{k.str()};
      auto path = std::string{key} + "." + key_segment(name);
      auto entry = v.as_table();
      if (entry == nullptr) {
        problems_.add(problems_.position(v.source()), path,
                      fmt::format("expected a table ([{}] or {} = {{ ... }}), got {}", path,
                                  key_segment(name), describe_got(v)));
        continue;
      }
      definition def;
      def.node.kind = kind;
      def.node.name = name;
      def.node.key_path = path;
      def.node.where = problems_.position(entry->source());
      section s{*entry, path, problems_};
      if (name.empty() || name.find('/') != std::string::npos) {
        s.problem_here("a name must be non-empty and contain no '/'");
        s.mark_failed("name");
      }
      if (table != nullptr) {
        bool remote = std::string_view{table} == "remote_pools";
        s.check_keys(remote ? remote_pool_keys : cluster_keys, path);
        if (remote)
          read_remote_pool(s, def);
        else
          read_cluster(s, def);
        defs_.push_back(std::move(def));
        continue;
      }
      s.check_keys(kind);
      switch (kind) {
        case node_kind::supervisor:
          read_supervisor(s, def);
          break;
        case node_kind::pool:
          read_pool(s, def);
          break;
        case node_kind::actor:
          read_actor(s, def);
          break;
      }
      defs_.push_back(std::move(def));
    }
  }

  void read_supervisor(section& s, definition& def) {
    auto& n = def.node;
    assign(n.strategy, s.strategy());
    assign(n.intensity.max_restarts,
           s.count("max_restarts", 0, max_u32, "an integer >= 0"));
    assign(n.intensity.period, s.seconds("max_seconds"));
    read_backoff(s, n.backoff);
    n.restart = s.restart().value_or(restart_type::permanent);
    read_significant(s, n);
    n.shutdown = s.shutdown(node_kind::supervisor).value_or(shutdown_policy::infinity());
    if (auto w = s.word("auto_shutdown", auto_shutdown_words))
      n.shutdown_when = *w == "any_significant"   ? auto_shutdown::any_significant
                        : *w == "all_significant" ? auto_shutdown::all_significant
                                                  : auto_shutdown::never;
    if (n.strategy == supervision_strategy::dynamic) {
      read_dynamic(s, def);
      return;
    }
    for (auto key : {"template", "max_children"})
      if (s.get(key) != nullptr)
        s.problem(key, "only for strategy = \"dynamic\" (children made at run time)");
    if (!s.require("children", "an array of names of supervisors, pools or actors")) {
      children_unknown_ = true;
      return;
    }
    auto node = s.get("children");
    auto arr = node->as_array();
    if (arr == nullptr) {
      children_unknown_ = true;
      s.problem("children", fmt::format("expected an array of names of supervisors, pools or "
                                        "actors, got {}",
                                        describe_got(*node)));
      return;
    }
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const auto& x = *arr->get(i);
      auto path = fmt::format("{}[{}]", s.path_of("children"), i);
      auto str = x.as_string();
      if (str == nullptr || str->get().empty()) {
        children_unknown_ = true;
        problems_.add(problems_.position(x.source()), path,
                      fmt::format("expected the name of a supervisor, pool or actor, got {}",
                                  describe_got(x)));
        continue;
      }
      def.children.push_back({str->get(), std::move(path), problems_.position(x.source())});
    }
  }

  /// `PREFIX_min_ms` and `PREFIX_max_ms` (positive with `positive`, else
  /// >= 0), the first not above the second.
  void read_backoff(section& s, restart_backoff& backoff,
                    std::string_view prefix = "restart_backoff", bool positive = false) {
    auto min_key = fmt::format("{}_min_ms", prefix);
    auto max_key = fmt::format("{}_max_ms", prefix);
    assign(backoff.min, s.millis(min_key, positive));
    assign(backoff.max, s.millis(max_key, positive));
    if (backoff.min <= backoff.max || s.failed(min_key) || s.failed(max_key))
      return;
    auto& key = s.get(min_key) ? min_key : max_key;
    s.problem(key, fmt::format("{} ({}) must not exceed {} ({})", min_key,
                               ms_text(backoff.min), max_key, ms_text(backoff.max)));
  }

  /// The crash barrier's keys: retries, poison table, circuit breaker.
  void read_crash_barrier(section& s, pool_config& cfg) {
    assign(cfg.retry.max_attempts,
           s.count("retry_max_attempts", 1, 100, "an integer 1..100 (1: no retries)"));
    assign(cfg.retry.backoff_min, s.millis("retry_backoff_min_ms", false));
    assign(cfg.retry.backoff_max, s.millis("retry_backoff_max_ms", false));
    assign(cfg.poison.threshold,
           s.count("poison_threshold", 0, max_u32, "an integer >= 0 (0: off)"));
    assign(cfg.poison.ttl, s.millis("poison_ttl_ms", true));
    assign(cfg.poison.max_entries,
           s.count("poison_max_entries", 1, 10'000'000, "an integer 1..10000000"));
    assign(cfg.breaker.threshold,
           s.count("breaker_threshold", 0, max_u32, "an integer >= 0 (0: off)"));
    assign(cfg.breaker.window, s.millis("breaker_window_ms", true));
    assign(cfg.breaker.open_time, s.millis("breaker_open_ms", true));
  }

  void read_remote_pool(section& s, definition& def) {
    auto& n = def.node;
    n.pool.name = n.name;
    n.remote_pool = n.name;
    if (s.require("node", "\"host:port\" of a node exporting the pool")) {
      if (auto node = s.string("node", "\"host:port\"")) {
        if (split_host_port(*node))
          n.remote_node = *node;
        else
          s.problem("node", fmt::format("expected \"host:port\" (port 0 to 65535), got {}",
                                        quote(*node)));
      }
    }
    assign(n.remote_pool, s.string("pool", "the pool's name on its node"));
    if (auto ms = s.millis("heartbeat_interval_ms", true))
      n.heartbeat_interval = std::chrono::duration_cast<std::chrono::milliseconds>(*ms);
    if (auto ms = s.millis("heartbeat_timeout_ms", true))
      n.heartbeat_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*ms);
    if (auto ms = s.millis("connect_timeout_ms", true))
      n.start_timeout = *ms;
    n.restart = s.restart().value_or(restart_type::permanent);
  }

  void read_cluster(section& s, definition& def) {
    auto& n = def.node;
    auto& c = n.cluster;
    n.pool.name = n.name;
    c.name = n.name;
    if (s.require("members", "a list of the tree's pools"))
      if (auto names = s.string_list("members")) {
        if (names->empty())
          s.problem("members", "expected at least one pool");
        c.members = *names;
      }
    assign(c.queue_max, s.count("queue_max", 0, max_u32, "an integer >= 0"));
    assign(c.queue_timeout, s.millis("queue_timeout_ms", true));
    assign(c.request_timeout, s.millis("request_timeout_ms", true));
    if (auto w = s.word("affinity", affinity_words))
      c.affinity = *parse_affinity_mode(std::string{*w});
    if (auto ms = s.millis("status_interval_ms", true))
      c.status_interval = std::chrono::duration_cast<std::chrono::milliseconds>(*ms);
    read_backoff(s, c.rejoin_backoff, "rejoin_backoff", true);
    n.restart = s.restart().value_or(restart_type::permanent);
  }

  /// `cpu_affinity = "spread"` or a list of CPU lists, one per worker slot
  /// round robin (`[[0, 1], [2, 3]]`).
  void read_cpu_affinity(section& s, cpu_affinity_spec& out) {
    auto node = s.get("cpu_affinity");
    if (node == nullptr)
      return;
    constexpr auto expected = "\"spread\" or a list of CPU lists such as [[0, 1], [2, 3]]";
    if (auto word = node->as_string()) {
      if (word->get() == "spread")
        out.spread = true;
      else
        s.problem("cpu_affinity", fmt::format("expected {}, got {}", expected,
                                              describe_got(*node)));
      return;
    }
    auto sets = node->as_array();
    bool ok = sets != nullptr && !sets->empty();
    std::vector<std::vector<int>> parsed;
    if (ok)
      for (auto& set : *sets) {
        auto cpus = set.as_array();
        if (cpus == nullptr || cpus->empty()) {
          ok = false;
          break;
        }
        std::vector<int> one;
        for (auto& cpu : *cpus) {
          auto i = cpu.as_integer();
          if (i == nullptr || i->get() < 0 || i->get() > 1023) {
            ok = false;
            break;
          }
          one.push_back(static_cast<int>(i->get()));
        }
        parsed.push_back(std::move(one));
      }
    if (!ok) {
      s.problem("cpu_affinity", fmt::format("expected {} (CPUs 0 to 1023), got {}", expected,
                                            describe_got(*node)));
      return;
    }
    out.sets = std::move(parsed);
  }

  /// `min_size`/`max_size` and how the pool moves between them.
  void read_autoscale(section& s, pool_config& cfg) {
    auto& a = cfg.autoscale;
    auto min = s.count("min_size", 1, 4096, "a positive integer");
    auto max = s.count("max_size", 1, 4096, "a positive integer");
    auto millis = [&](const char* key, std::chrono::milliseconds& out) {
      if (auto ms = s.millis(key, true))
        out = std::chrono::duration_cast<std::chrono::milliseconds>(*ms);
    };
    millis("scale_up_wait_ms", a.scale_up_wait);
    millis("scale_busy_window_ms", a.busy_window);
    millis("idle_timeout_ms", a.idle_timeout);
    millis("scale_up_cooldown_ms", a.up_cooldown);
    millis("scale_down_cooldown_ms", a.down_cooldown);
    assign(a.busy_threshold, s.fraction("scale_busy_threshold"));
    assign(a.max_step_up, s.count("scale_max_step", 1, 4096, "a positive integer"));
    if (!min && !max) {
      for (auto key : {"scale_up_wait_ms", "scale_busy_window_ms", "idle_timeout_ms",
                       "scale_up_cooldown_ms", "scale_down_cooldown_ms", "scale_busy_threshold",
                       "scale_max_step"})
        if (s.get(key) != nullptr)
          s.problem(key, "applies to autoscaling only: give min_size and max_size too");
      return;
    }
    if (!min || !max) {
      if (!s.failed("min_size") && !s.failed("max_size"))
        s.problem(min ? "min_size" : "max_size",
                  "autoscaling needs both min_size and max_size");
      return;
    }
    if (*min >= *max) {
      s.problem("min_size", fmt::format("min_size ({}) must be below max_size ({}); for a fixed "
                                        "size use size alone",
                                        *min, *max));
      return;
    }
    a.min_size = *min;
    a.max_size = *max;
    if (s.get("size") == nullptr)
      cfg.size = *min;  // the start size
    else if (cfg.size < *min || cfg.size > *max)
      s.problem("size", fmt::format("the start size ({}) must lie between min_size ({}) and "
                                    "max_size ({})",
                                    cfg.size, *min, *max));
  }

  void read_pool(section& s, definition& def) {
    auto& n = def.node;
    auto& cfg = n.pool;
    cfg.name = n.name;
    constexpr auto adapter_text = "a dotted path package.module.ClassName";
    if (s.require("adapter", adapter_text)) {
      if (auto adapter = s.string("adapter", adapter_text)) {
        cfg.adapter = *adapter;
        if (!is_dotted_python_path(*adapter))
          s.problem("adapter", fmt::format("expected {} (Python identifiers separated by "
                                           "dots), got {}",
                                           adapter_text, quote(*adapter)));
      }
    }
    assign(cfg.size, s.count("size", 1, 4096, "a positive integer"));
    read_autoscale(s, cfg);
    assign(cfg.min_ready, s.count("min_ready", 0, max_u32, "an integer >= 0"));
    if (auto w = s.word("profile", profile_words))
      cfg.profile = *parse_worker_profile(*w);
    assign(cfg.threads_per_worker, s.count("threads_per_worker", 1, 1024, "an integer 1..1024"));
    if (auto w = s.word("thread_check", thread_check_words))
      cfg.thread_check = *parse_thread_check_mode(*w);
    assign(cfg.python, s.string("python", "a non-empty string (interpreter path or command)"));
    assign(cfg.python_path, s.string_list("python_path"));
    assign(cfg.env, s.string_table("env"));
    read_cpu_affinity(s, cfg.cpu_affinity);
    assign(cfg.startup_concurrency,
           s.count("startup_concurrency", 0, max_u32, "an integer >= 0"));
    assign(cfg.startup_timeout, s.millis("startup_timeout_ms", true));
    assign(cfg.queue_max, s.count("queue_max", 0, max_u32, "an integer >= 0"));
    assign(cfg.queue_timeout, s.millis("queue_timeout_ms", true));
    assign(cfg.request_timeout, s.millis("request_timeout_ms", true));
    assign(cfg.deadline_grace, s.millis("deadline_grace_ms", false));
    assign(cfg.max_payload_bytes,
           s.integer("max_payload_bytes", 1, std::numeric_limits<std::int64_t>::max(),
                     "a positive integer (bytes)"));
    assign(cfg.shutdown_timeout, s.millis("shutdown_timeout_ms", false));
    assign(cfg.worker_ttl, s.millis("worker_ttl_ms", false));
    assign(cfg.worker_max_requests,
           s.integer("worker_max_requests", 0, std::numeric_limits<std::int64_t>::max(),
                     "an integer >= 0 (0: off)"));
    assign(cfg.worker_max_requests_jitter,
           s.integer("worker_max_requests_jitter", 0, std::numeric_limits<std::int64_t>::max(),
                     "an integer >= 0"));
    assign(cfg.worker_max_rss_bytes,
           s.integer("worker_max_rss_bytes", 0, std::numeric_limits<std::int64_t>::max(),
                     "an integer >= 0 (bytes; 0: off)"));
    assign(cfg.lifecycle_interval, s.millis("lifecycle_interval_ms", true));
    assign(cfg.max_concurrent_recycles,
           s.count("max_concurrent_recycles", 1, max_u32, "a positive integer"));
    assign(cfg.drain_timeout, s.millis("drain_timeout_ms", false));
    if (auto w = s.word("deadline_policy", deadline_policy_words))
      cfg.kill_stuck_calls = *w == "kill";
    assign(cfg.health_interval, s.millis("health_interval_ms", false));
    assign(cfg.health_timeout, s.millis("health_timeout_ms", true));
    assign(cfg.health_max_missed,
           s.count("health_max_missed", 1, max_u32, "a positive integer"));
    if (auto w = s.word("affinity", affinity_words))
      cfg.affinity = *parse_affinity_mode(std::string{*w});
    assign(cfg.session_ttl, s.millis("session_ttl_ms", true));
    assign(cfg.max_sessions, s.count("max_sessions", 1, 10'000'000, "an integer 1..10000000"));
    assign(cfg.python_event_buffer,
           s.count("python_event_buffer", 0, 1u << 20, "an integer 0..1048576 (0: off)"));
    assign(cfg.stream_window, s.count("stream_window", 1, 4096, "an integer 1..4096"));
    if (auto w = s.word("transport", transport_words))
      cfg.use_batches = *w == "batches";
    assign(cfg.batches.max_calls, s.count("batch_max_calls", 1, 4096, "an integer 1..4096"));
    assign(cfg.batches.max_bytes,
           s.integer("batch_max_bytes", 1024, std::numeric_limits<std::int64_t>::max(),
                     "an integer >= 1024 (bytes)"));
    assign(cfg.batches.max_unanswered,
           s.count("batch_max_unanswered", 1, 64, "an integer 1..64"));
    assign(cfg.pipeline_depth, s.count("pipeline_depth", 0, 1024, "an integer 0..1024 (0: off)"));
    assign(cfg.preload, s.boolean("preload"));
    assign(cfg.shared_memory, s.boolean("shared_memory"));
    assign(cfg.shm_threshold,
           s.integer("shm_threshold", 0, std::numeric_limits<std::int64_t>::max(),
                     "an integer >= 0 (bytes)"));
    assign(cfg.shm_bytes_max,
           s.integer("shm_bytes_max", 1, std::numeric_limits<std::int64_t>::max(),
                     "an integer >= 1 (bytes)"));
    assign(cfg.shm_cache_bytes,
           s.integer("shm_cache_bytes", 0, std::numeric_limits<std::int64_t>::max(),
                     "an integer >= 0 (bytes)"));
    assign(cfg.pipeline_budget, s.millis("pipeline_budget_ms", false));
    assign(cfg.intensity.max_restarts,
           s.count("max_restarts", 0, max_u32, "an integer >= 0"));
    assign(cfg.intensity.period, s.seconds("max_seconds"));
    read_backoff(s, cfg.backoff);
    read_crash_barrier(s, cfg);
    n.restart = s.restart().value_or(restart_type::permanent);
    read_significant(s, n);
    auto default_shutdown = cfg.shutdown_timeout + std::chrono::seconds{1};
    n.shutdown = s.shutdown(node_kind::pool).value_or(shutdown_policy::after(default_shutdown));
    check_pool(s, n);
  }

  /// Runs `validate(pool_config)` and reports its problems at the keys they
  /// name, leaving out those about keys already reported.
  void check_pool(section& s, tree_node& n) {
    auto checked = validate(n.pool);
    if (checked) {
      n.pool = std::move(*checked);
      return;
    }
    auto text = describe(checked.error()).message;
    constexpr std::string_view bullet = "\n  - ";
    auto reported = false;
    for (auto pos = text.find(bullet); pos != std::string::npos;) {
      auto start = pos + bullet.size();
      auto next = text.find(bullet, start);
      auto line = text.substr(start, next == std::string::npos ? next : next - start);
      pos = next;
      reported = true;
      // The keys the problem names, by position in its text.
      std::vector<std::pair<std::size_t, std::string_view>> named;
      auto consider = [&](std::string_view key) {
        if (auto at = find_word(line, key); at != std::string_view::npos)
          named.emplace_back(at, key);
      };
      consider("name");
      for (auto key : pool_keys)
        consider(key);
      std::sort(named.begin(), named.end());
      if (std::any_of(named.begin(), named.end(),
                      [&](const auto& x) { return s.failed(x.second); }))
        continue;
      if (named.empty() || named.front().second == "name") {
        s.problem_here(line);
        continue;
      }
      auto key = named.front().second;
      for (const auto& x : named) {
        if (s.get(x.second) != nullptr) {
          key = x.second;
          break;
        }
      }
      auto message = line;
      if (message.rfind(std::string{key} + " ", 0) == 0)
        message = message.substr(key.size() + 1);
      s.problem(key, std::move(message));
    }
    if (!reported)
      s.problem_here(text);
  }

  /// A dynamic supervisor (OTP's simple_one_for_one): no declared children,
  /// one template node its children are made from at run time.
  void read_dynamic(section& s, definition& def) {
    auto& n = def.node;
    n.max_children = 1000;
    assign(n.max_children, s.count("max_children", 1, 1000000, "an integer 1..1000000"));
    if (auto children = s.get("children")) {
      auto arr = children->as_array();
      if (arr == nullptr || !arr->empty())
        s.problem("children", "a dynamic supervisor has no declared children: its children "
                              "are made from its template at run time");
    }
    constexpr auto template_text = "the name of a supervisor, pool or actor to make children from";
    if (!s.require("template", template_text)) {
      children_unknown_ = true;
      return;
    }
    auto name = s.string("template", template_text);
    if (!name) {
      children_unknown_ = true;
      return;
    }
    auto node = s.get("template");
    // Linked like a child (it must exist and have no other parent), built as the template.
    def.children.push_back({*name, s.path_of("template"), problems_.position(node->source())});
  }

  /// OTP: only a transient or temporary child may be significant.
  void read_significant(section& s, tree_node& n) {
    auto b = s.boolean("significant");
    if (!b)
      return;
    n.significant = *b;
    if (*b && n.restart == restart_type::permanent)
      s.problem("significant", "a significant child must be transient or temporary (OTP): "
                               "set restart = \"transient\" or drop significant");
  }

  void read_actor(section& s, definition& def) {
    auto& n = def.node;
    constexpr auto kind_text = "the name of a registered actor kind";
    if (s.require("kind", kind_text)) {
      if (auto kind = s.string("kind", kind_text)) {
        n.actor_kind = *kind;
        check_actor_kind(s, *kind);
      }
    }
    if (auto node = s.get("args")) {
      if (auto tbl = node->as_table())
        n.args = std::move(*to_value(*tbl).if_map());
      else
        s.problem("args", fmt::format("expected a table, got {}", describe_got(*node)));
    }
    n.restart = s.restart().value_or(restart_type::permanent);
    read_significant(s, n);
    assign(n.shutdown, s.shutdown(node_kind::actor));
    assign(n.start_timeout, s.millis("start_timeout_ms", true));
  }

  void check_actor_kind(section& s, const std::string& kind) {
    if (registry_ == nullptr || registry_->find(kind) != nullptr)
      return;
    auto kinds = registry_->kinds();
    auto known = kinds.empty() ? std::string{"no actor kinds are registered"}
                               : "registered kinds: " + fmt::format("{}", fmt::join(kinds, ", "));
    s.problem("kind", fmt::format("unknown actor kind {}{}; {} (snakepit run registers kinds "
                                  "from the libraries in [plugins] libraries, docs/plugins.md)",
                                  quote(kind), did_you_mean(kind, kinds), known));
  }

  // -- linking ------------------------------------------------------------------

  static std::string at_line(const source_position& where) {
    return fmt::format("line {}", where.line);
  }

  void link() {
    std::stable_sort(defs_.begin(), defs_.end(), [](const auto& x, const auto& y) {
      return std::tie(x.node.where.line, x.node.where.column)
             < std::tie(y.node.where.line, y.node.where.column);
    });
    // Names are unique across supervisors, pools and actors.
    for (std::size_t i = 0; i < defs_.size(); ++i) {
      auto& n = defs_[i].node;
      auto [it, added] = by_name_.emplace(n.name, i);
      if (added)
        continue;
      defs_[i].duplicate = true;
      const auto& first = defs_[it->second].node;
      problems_.add(n.where, n.key_path,
                    fmt::format("the name '{}' is already taken by {} ({}): names must be "
                                "unique across supervisors, pools and actors",
                                n.name, first.key_path, at_line(first.where)));
    }
    link_children();
    find_root();
    report_unreferenced();
    report_cycles();
  }

  void link_children() {
    parent_.assign(defs_.size(), std::nullopt);
    parent_ref_.assign(defs_.size(), nullptr);
    std::vector<std::string_view> names;
    for (const auto& entry : by_name_)
      names.push_back(entry.first);
    for (std::size_t i = 0; i < defs_.size(); ++i) {
      std::set<std::string_view> seen;
      for (const auto& ref : defs_[i].children) {
        auto j = by_name_.find(ref.name);
        if (j == by_name_.end()) {
          // Suggestions cost a pass over every name: a file with thousands
          // of wrong names gets them for the first ones only.
          constexpr std::size_t max_suggestions = 100;
          auto hint = ++suggested_ <= max_suggestions ? closest(ref.name, names) : std::nullopt;
          problems_.add(ref.where, ref.key_path,
                        fmt::format("no supervisor, pool or actor is named {}{}",
                                    quote(ref.name),
                                    hint ? fmt::format(" (did you mean '{}'?)", *hint)
                                         : std::string{}));
          if (hint)
            misspelled_.emplace(*hint);
          continue;
        }
        if (!seen.insert(ref.name).second) {
          problems_.add(ref.where, ref.key_path,
                        fmt::format("'{}' is listed twice in these children", ref.name));
          continue;
        }
        if (auto p = parent_[j->second]) {
          const auto& other = *parent_ref_[j->second];
          problems_.add(ref.where, ref.key_path,
                        fmt::format("'{}' is already a child of supervisor '{}' ({}, {}): a "
                                    "node has exactly one parent",
                                    ref.name, defs_[*p].node.name, other.key_path,
                                    at_line(other.where)));
          continue;
        }
        parent_[j->second] = i;
        parent_ref_[j->second] = &ref;
      }
    }
  }

  void find_root() {
    if (root_name_) {
      const auto& [name, where] = *root_name_;
      auto j = by_name_.find(name);
      if (j == by_name_.end()) {
        std::vector<std::string_view> supervisors;
        for (const auto& d : defs_)
          if (d.node.kind == node_kind::supervisor)
            supervisors.push_back(d.node.name);
        problems_.add(where, "root",
                      fmt::format("no supervisor is named {}{}", quote(name),
                                  did_you_mean(name, supervisors)));
        return;
      }
      const auto& n = defs_[j->second].node;
      if (n.kind != node_kind::supervisor) {
        problems_.add(where, "root",
                      fmt::format("the root must be a supervisor, but '{}' is a {} ({})", name,
                                  kind_word(n.kind), n.key_path));
        return;
      }
      if (parent_[j->second]) {
        const auto& ref = *parent_ref_[j->second];
        problems_.add(where, "root",
                      fmt::format("the root '{}' must not be a child, but {} lists it ({})",
                                  name, ref.key_path, at_line(ref.where)));
        return;
      }
      root_ = j->second;
      return;
    }
    std::vector<std::size_t> candidates;
    auto supervisors = 0;
    for (std::size_t i = 0; i < defs_.size(); ++i) {
      if (defs_[i].node.kind != node_kind::supervisor || defs_[i].duplicate)
        continue;
      ++supervisors;
      if (!parent_[i])
        candidates.push_back(i);
    }
    if (supervisors == 0 && supervisors_unknown_) {
      // Reported where the supervisors section has the wrong type.
    } else if (supervisors == 0) {
      problems_.add({problems_.file(), 1, 1}, "supervisors",
                    "no supervisor is defined: a tree needs a root [supervisors.NAME] with "
                    "children");
    } else if (children_unknown_) {
      // Reported at the children list that could not be read.
    } else if (candidates.empty()) {
      auto first = std::find_if(defs_.begin(), defs_.end(), [](const auto& d) {
        return d.node.kind == node_kind::supervisor;
      });
      problems_.add(first->node.where, "root",
                    "no root supervisor: every supervisor is listed as another's child");
    } else if (candidates.size() > 1) {
      std::vector<std::string> names;
      for (auto i : candidates)
        names.push_back(fmt::format("'{}' ({})", defs_[i].node.name,
                                    at_line(defs_[i].node.where)));
      problems_.add(defs_[candidates[1]].node.where, "root",
                    fmt::format("several supervisors are nobody's child: {}; a tree has one "
                                "root: set root = \"NAME\" at the top of the file, or list "
                                "the others in a supervisor's children",
                                fmt::join(names, ", ")));
      ambiguous_roots_ = std::move(candidates);
    } else {
      root_ = candidates.front();
    }
  }

  void report_unreferenced() {
    auto any_supervisor = std::any_of(defs_.begin(), defs_.end(), [](const auto& d) {
      return d.node.kind == node_kind::supervisor;
    });
    // Without a known root or known children, "unreferenced" would be a guess.
    auto bad_root = root_name_ && !root_;
    if (!any_supervisor || children_unknown_ || bad_root)
      return;
    for (std::size_t i = 0; i < defs_.size(); ++i) {
      if (parent_[i] || defs_[i].duplicate || root_ == i
          || std::count(ambiguous_roots_.begin(), ambiguous_roots_.end(), i) > 0)
        continue;
      const auto& n = defs_[i].node;
      if (root_name_ && root_name_->first == n.name)
        continue; // reported by find_root
      if (misspelled_.count(n.name) > 0)
        continue; // a misspelled reference meant it: reported there
      auto where_root = root_ ? fmt::format(", so it is not part of the tree under '{}'",
                                            defs_[*root_].node.name)
                              : std::string{};
      problems_.add(n.where, n.key_path,
                    fmt::format("{} '{}' is defined but not listed in any supervisor's "
                                "children{}",
                                kind_word(n.kind), n.name, where_root));
    }
  }

  /// Each node has at most one parent here, so following parents from any
  /// node either ends at a root or runs into a loop.
  void report_cycles() {
    constexpr std::size_t unvisited = std::numeric_limits<std::size_t>::max();
    std::vector<std::size_t> walk_of(defs_.size(), unvisited);
    for (std::size_t start = 0; start < defs_.size(); ++start) {
      std::vector<std::size_t> walk;
      std::optional<std::size_t> x = start;
      while (x && walk_of[*x] == unvisited) {
        walk_of[*x] = start;
        walk.push_back(*x);
        x = parent_[*x];
      }
      if (!x || walk_of[*x] != start)
        continue;
      // walk = child, parent, grandparent, ...; the loop starts at *x.
      auto first = std::find(walk.begin(), walk.end(), *x);
      std::vector<std::size_t> loop(first, walk.end());
      std::reverse(loop.begin(), loop.end()); // parent before child
      // Report at the children entry that comes first in the file.
      const child_ref* at = nullptr;
      std::size_t at_parent = loop.front();
      for (auto i : loop) {
        const auto* ref = parent_ref_[i];
        if (at == nullptr
            || std::tie(ref->where.line, ref->where.column)
                 < std::tie(at->where.line, at->where.column)) {
          at = ref;
          at_parent = *parent_[i];
        }
      }
      // Name the loop from the supervisor whose children entry is reported.
      std::rotate(loop.begin(), std::find(loop.begin(), loop.end(), at_parent), loop.end());
      std::string path;
      for (auto i : loop)
        path += defs_[i].node.name + " -> ";
      path += defs_[loop.front()].node.name;
      problems_.add(at->where, at->key_path,
                    fmt::format("cycle: {}; a supervisor cannot be its own descendant", path));
    }
  }

  tree_node build(std::size_t index) const {
    tree_node n = defs_[index].node;
    auto& into = n.strategy == supervision_strategy::dynamic && n.kind == node_kind::supervisor
                   ? n.child_template
                   : n.children;
    for (const auto& ref : defs_[index].children)
      into.push_back(build(by_name_.at(ref.name)));
    return n;
  }

  problem_list problems_;
  const actor_registry* registry_;
  std::vector<definition> defs_;
  std::map<std::string, std::size_t, std::less<>> by_name_;
  std::vector<std::optional<std::size_t>> parent_;
  std::vector<const child_ref*> parent_ref_;
  std::optional<std::pair<std::string, source_position>> root_name_;
  std::optional<std::size_t> root_;
  std::vector<std::size_t> ambiguous_roots_;
  /// Some children list could not be read: who is whose child is not known,
  /// so neither are the root candidates and the unreferenced definitions.
  bool children_unknown_ = false;
  logging_spec logging_;
  metrics_spec metrics_;
  gateway_spec gateway_;
  node_spec node_;
  /// Names suggested for undefined references ("did you mean").
  std::set<std::string, std::less<>> misspelled_;
  std::size_t suggested_ = 0;
  /// The `supervisors` section is not a table (already reported).
  bool supervisors_unknown_ = false;
};

struct outcome {
  std::vector<config_problem> problems;
  std::optional<tree_spec> spec;
};

outcome analyze(std::string_view text, std::string source_name,
                const actor_registry* registry) {
  loader ld{source_name, registry};
  outcome out;
  // toml++ recurses into keys and values: bound both before it sees them.
  if (auto limit = detail::check_toml_limits(text)) {
    out.problems.push_back({source_position{source_name, limit->line, limit->column}, {},
                            fmt::format("syntax error: {}", limit->message)});
    return out;
  }
  toml::table doc;
#if TOML_EXCEPTIONS
  try {
    doc = toml::parse(text, std::string_view{source_name});
  } catch (const toml::parse_error& err) {
    auto where = ld.problems().position(err.source());
    out.problems.push_back({where, {}, fmt::format("syntax error: {}", err.description())});
    return out;
  }
#else
  auto parsed = toml::parse(text, std::string_view{source_name});
  if (!parsed) {
    const auto& err = parsed.error();
    auto where = ld.problems().position(err.source());
    out.problems.push_back({where, {}, fmt::format("syntax error: {}", err.description())});
    return out;
  }
  doc = std::move(parsed).table();
#endif
  out.spec = ld.run(doc);
  out.problems = ld.problems().take();
  return out;
}

outcome analyze_file(const std::string& path, const actor_registry* registry) {
  std::string why;
  auto text = detail::read_tree_file(path, why);
  if (!text) {
    outcome out;
    out.problems.push_back({{path, 0, 0}, {}, "cannot read the tree file: " + why});
    return out;
  }
  return analyze(*text, path, registry);
}

caf::expected<tree_spec> to_expected(outcome out, const std::string& source_name) {
  if (out.problems.empty() && out.spec)
    return std::move(*out.spec);
  auto n = out.problems.size();
  auto msg = fmt::format("{} problem{} in {}:", n, n == 1 ? "" : "s", source_name);
  for (const auto& p : out.problems)
    msg += "\n" + p.to_string();
  return make_error(errc::bad_config, std::move(msg));
}

void describe_node(const tree_node& n, std::size_t depth, std::string& out) {
  out.append(depth * 2, ' ');
  out += fmt::format("{} {}: ", kind_word(n.kind), n.name);
  switch (n.kind) {
    case node_kind::supervisor:
      out += fmt::format("{}, at most {} restart{} in {}, back-off {}..{}",
                         strategy_word(n.strategy), n.intensity.max_restarts,
                         n.intensity.max_restarts == 1 ? "" : "s",
                         seconds_text(n.intensity.period), number_text(n.backoff.min, 1'000'000),
                         ms_text(n.backoff.max));
      break;
    case node_kind::pool:
      out += fmt::format("adapter {}, size {}, min_ready {}, python {}", n.pool.adapter,
                         n.pool.size, n.pool.min_ready,
                         n.pool.python.empty() ? std::string{"auto"} : n.pool.python);
      if (n.pool.profile == worker_profile::thread)
        out += fmt::format(", thread profile x {} threads{}", n.pool.threads_per_worker,
                           n.pool.thread_check == thread_check_mode::off
                             ? std::string{}
                             : ", thread_check " + to_string(n.pool.thread_check));
      break;
    case node_kind::actor:
      out += "kind " + n.actor_kind;
      if (!n.args.empty())
        out += ", args " + value(n.args).to_json();
      break;
  }
  if (!n.child_template.empty())
    out += fmt::format(", template {}, max_children {}", n.child_template.front().name,
                       n.max_children);
  out += fmt::format("; restart {}, shutdown {}\n", restart_word(n.restart),
                     shutdown_text(n.shutdown));
  for (const auto& child : n.children)
    describe_node(child, depth + 1, out);
  for (const auto& child : n.child_template)
    describe_node(child, depth + 1, out);
}

} // namespace

std::string config_problem::to_string() const {
  std::string out = where.file;
  if (where.line > 0) {
    out += fmt::format("{}{}", out.empty() ? "" : ":", where.line);
    if (where.column > 0)
      out += fmt::format(":{}", where.column);
  }
  if (!out.empty())
    out += ": ";
  if (!key_path.empty())
    out += key_path + ": ";
  out += message;
  return out;
}

std::vector<config_problem> check_tree_file(const std::string& path,
                                            const actor_registry* registry) {
  return analyze_file(path, registry).problems;
}

std::vector<config_problem> check_tree_string(std::string_view toml, std::string source_name,
                                              const actor_registry* registry) {
  return analyze(toml, std::move(source_name), registry).problems;
}

namespace {

/// Relative `python_path` entries and interpreter paths mean "next to the
/// tree file", wherever `snakepit run` is started from: resolved against the
/// working directory, they would import whatever another user put there.
void anchor_paths(tree_node& node, const std::string& base) {
  auto anchor = [&](std::string& path) { path = absolute_path(path, base); };
  if (node.kind == node_kind::pool) {
    for (auto& dir : node.pool.python_path)
      anchor(dir);
    if (node.pool.python.find('/') != std::string::npos)  // a command name stays a name
      anchor(node.pool.python);
  }
  for (auto& child : node.children)
    anchor_paths(child, base);
  for (auto& child : node.child_template)
    anchor_paths(child, base);
}

} // namespace

caf::expected<tree_spec> load_tree_file(const std::string& path,
                                        const actor_registry* registry) {
  auto spec = to_expected(analyze_file(path, registry), path);
  if (spec) {
    char resolved[PATH_MAX];
    std::string file = ::realpath(path.c_str(), resolved) != nullptr ? resolved : path;
    auto slash = file.rfind('/');
    auto base = slash == std::string::npos ? std::string{"."}
                                           : slash == 0 ? std::string{"/"}
                                                        : file.substr(0, slash);
    anchor_paths(spec->root, base);
    spec->metrics.token_file = absolute_path(spec->metrics.token_file, base);
    for (auto* file_key : {&spec->gateway.token_file, &spec->gateway.tls_cert,
                           &spec->gateway.tls_key, &spec->gateway.tls_client_ca})
      if (!file_key->empty())
        *file_key = absolute_path(*file_key, base);
  }
  return spec;
}

caf::expected<tree_spec> load_tree_string(std::string_view toml, std::string source_name,
                                          const actor_registry* registry) {
  auto out = analyze(toml, source_name, registry);
  return to_expected(std::move(out), source_name);
}

std::string describe_tree(const tree_spec& spec) {
  std::string out = fmt::format("tree from {}\n", spec.source);
  const auto& logging = spec.logging;
  if (logging.level || logging.format) {
    std::vector<std::string> parts;
    if (logging.level)
      parts.push_back(fmt::format("level {}", to_string(*logging.level)));
    if (logging.format)
      parts.push_back(fmt::format("format {}", to_string(*logging.format)));
    out += fmt::format("logging: {}\n", fmt::join(parts, ", "));
  }
  if (spec.metrics.enabled)
    out += fmt::format("metrics: {}\n", endpoint_url(spec.metrics));
  describe_node(spec.root, 0, out);
  return out;
}

} // namespace snakepit

namespace snakepit {

namespace {

bool has_remote_pool(const tree_node& node) {
  if (!node.remote_node.empty())
    return true;
  for (auto& child : node.children)
    if (has_remote_pool(child))
      return true;
  for (auto& child : node.child_template)
    if (has_remote_pool(child))
      return true;
  return false;
}

} // namespace

bool needs_distribution(const tree_spec& spec) {
  return spec.node.enabled || has_remote_pool(spec.root);
}

std::vector<std::string> pool_names(const tree_node& node) {
  std::vector<std::string> out;
  if (node.kind == node_kind::pool)
    out.push_back(node.name);
  for (auto& child : node.children)
    for (auto& name : pool_names(child))
      out.push_back(std::move(name));
  return out;
}

} // namespace snakepit
