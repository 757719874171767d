#include "snakepit/observability/machine_info.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string_view>
#include <vector>

#include "snakepit/actors/scheduler_settings.hpp"

namespace snakepit {

namespace {

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::optional<std::int64_t> parse_int(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end == text.data())
    return std::nullopt;
  return value;
}

/// A "Key:   123 kB" line of /proc/meminfo, in bytes.
std::uint64_t meminfo_bytes(const std::string& meminfo, std::string_view key) {
  std::istringstream lines{meminfo};
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0
        && line[key.size()] == ':') {
      auto kib = parse_int(std::string_view{line}.substr(key.size() + 1));
      return kib && *kib > 0 ? static_cast<std::uint64_t>(*kib) * 1024 : 0;
    }
  }
  return 0;
}

/// The cgroup path of this process per controller, from /proc/self/cgroup
/// ("0::/path" for v2, keyed ""; "4:memory:/path" for v1).
std::map<std::string, std::string> cgroup_paths(const std::string& root) {
  std::map<std::string, std::string> out;
  auto text = read_text(root + "/proc/self/cgroup");
  if (!text)
    return out;
  std::istringstream lines{*text};
  for (std::string line; std::getline(lines, line);) {
    auto first = line.find(':');
    auto second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos)
      continue;
    auto controllers = line.substr(first + 1, second - first - 1);
    auto path = line.substr(second + 1);
    if (controllers.empty()) {
      out[""] = path;
      continue;
    }
    std::istringstream names{controllers};
    for (std::string name; std::getline(names, name, ',');)
      out[name] = path;
  }
  return out;
}

/// The lowest value `read(dir)` gives from the cgroup's directory up to the
/// hierarchy's mount point: a parent's limit binds its children too.
template <class Read>
auto lowest_along_path(const std::string& mount, std::string path, Read read)
  -> decltype(read(std::string{})) {
  decltype(read(std::string{})) lowest;
  for (;;) {
    if (auto value = read(path == "/" ? mount : mount + path);
        value && (!lowest || *value < *lowest))
      lowest = value;
    if (path.empty() || path == "/")
      break;
    auto slash = path.find_last_of('/');
    path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }
  return lowest;
}

/// A memory limit file: v2 memory.max ("max": none) or v1 memory.limit_in_bytes.
std::optional<std::uint64_t> memory_limit_file(const std::string& path) {
  auto text = read_text(path);
  auto value = text ? parse_int(*text) : std::nullopt;
  if (!value || *value <= 0)
    return std::nullopt;
  return static_cast<std::uint64_t>(*value);
}

std::optional<std::uint64_t> memory_max_in(const std::string& dir) {
  return memory_limit_file(dir + "/memory.max");
}

std::optional<std::uint64_t> memory_limit_in_bytes_in(const std::string& dir) {
  return memory_limit_file(dir + "/memory.limit_in_bytes");
}

std::optional<double> cpus_of(std::optional<std::int64_t> quota,
                              std::optional<std::int64_t> period) {
  if (!quota || !period || *quota <= 0 || *period <= 0)  // "max" / -1: no quota
    return std::nullopt;
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

/// v2 cpu.max: "QUOTA PERIOD" or "max PERIOD".
std::optional<double> cpu_max_in(const std::string& dir) {
  auto text = read_text(dir + "/cpu.max");
  auto space = text ? text->find(' ') : std::string::npos;
  if (space == std::string::npos)
    return std::nullopt;
  return cpus_of(parse_int(std::string_view{*text}.substr(0, space)),
                 parse_int(std::string_view{*text}.substr(space + 1)));
}

/// v1: the quota and the period in two files.
std::optional<double> cfs_quota_in(const std::string& dir) {
  auto quota = read_text(dir + "/cpu.cfs_quota_us");
  auto period = read_text(dir + "/cpu.cfs_period_us");
  if (!quota || !period)
    return std::nullopt;
  return cpus_of(parse_int(*quota), parse_int(*period));
}

/// Tries the v2 hierarchy first, then the v1 controller's.
template <class T>
std::optional<T> cgroup_limit(const std::string& root,
                              const std::map<std::string, std::string>& paths,
                              std::optional<T> (*v2)(const std::string&),
                              const char* v1_controller,
                              std::optional<T> (*v1)(const std::string&)) {
  auto base = root + "/sys/fs/cgroup";
  if (auto unified = paths.find(""); unified != paths.end())
    if (auto limit = lowest_along_path(base, unified->second, v2))
      return limit;
  if (auto legacy = paths.find(v1_controller); legacy != paths.end())
    return lowest_along_path(base + "/" + v1_controller, legacy->second, v1);
  return std::nullopt;
}

/// "avg10=12.50" in the "some" line of /proc/pressure/cpu, as a share.
std::optional<double> pressure_average(const std::string& psi, std::string_view key) {
  auto some = psi.find("some ");
  if (some == std::string::npos)
    return std::nullopt;
  auto line = std::string_view{psi}.substr(some, psi.find('\n', some) - some);
  auto at = line.find(key);
  if (at == std::string_view::npos)
    return std::nullopt;
  auto text = std::string{line.substr(at + key.size())};
  char* end = nullptr;
  auto percent = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || percent < 0)
    return std::nullopt;
  return std::min(percent, 100.0) / 100.0;
}

/// "0.52 0.58 0.59 3/186 8722": the 1-minute load and the runnable tasks.
void read_loadavg(const std::string& text, machine_info& m) {
  std::istringstream in{text};
  double load = 0, load5 = 0, load15 = 0;
  std::string tasks;
  if (!(in >> load >> load5 >> load15 >> tasks))
    return;
  m.load_1m = load;
  if (auto running = parse_int(tasks.substr(0, tasks.find('/'))); running && *running >= 0)
    m.runnable = static_cast<std::uint32_t>(*running);
}

std::string kernel_name() {
  utsname u{};
  if (::uname(&u) != 0)
    return {};
  return std::string{u.sysname} + " " + u.release;
}

} // namespace

machine_info read_machine_info(const std::string& root) {
  machine_info m;
  try {
    m.cores = available_cpus();
    if (auto meminfo = read_text(root + "/proc/meminfo")) {
      m.memory_total_bytes = meminfo_bytes(*meminfo, "MemTotal");
      m.memory_available_bytes = meminfo_bytes(*meminfo, "MemAvailable");
    }
    auto paths = cgroup_paths(root);
    // Report only limits that bind: v1 says "unlimited" with a huge number.
    if (auto limit = cgroup_limit<std::uint64_t>(root, paths, memory_max_in, "memory",
                                                 memory_limit_in_bytes_in);
        limit && (m.memory_total_bytes == 0 || *limit < m.memory_total_bytes))
      m.cgroup_memory_limit_bytes = limit;
    if (auto limit = cgroup_limit<double>(root, paths, cpu_max_in, "cpu", cfs_quota_in);
        limit && *limit < m.cores)
      m.cgroup_cpu_limit = limit;
    m.kernel = kernel_name();
    if (auto psi = read_text(root + "/proc/pressure/cpu")) {
      m.cpu_pressure_10s = pressure_average(*psi, "avg10=");
      m.cpu_pressure_60s = pressure_average(*psi, "avg60=");
    }
    if (auto loadavg = read_text(root + "/proc/loadavg"))
      read_loadavg(*loadavg, m);
  } catch (...) {
    // Only allocation can throw here; what was read so far is still true.
  }
  return m;
}

machine_info read_machine_info() {
  return read_machine_info("");
}

} // namespace snakepit
