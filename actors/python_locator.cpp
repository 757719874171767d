#include "snakepit/actors/python_locator.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "snakepit/actors/detail/run_captured.hpp"
#include "snakepit/actors/python_command.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit {

namespace {

bool is_executable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)
         && ::access(path.c_str(), X_OK) == 0;
}

/// Resolves a command name through PATH; paths with a slash stay as they are.
std::string resolve_command(const std::string& name) {
  if (name.find('/') != std::string::npos)
    return is_executable(name) ? absolute_path(name) : std::string{};
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    auto end = dirs.find(':', start);
    if (end == std::string::npos)
      end = dirs.size();
    auto dir = dirs.substr(start, end - start);
    // Relative entries ("", ".") would search the working directory: a
    // planted python3 there is not ours to run.
    if (!dir.empty() && dir.front() == '/') {
      auto candidate = dir + "/" + name;
      if (is_executable(candidate))
        return candidate;
    }
    start = end + 1;
  }
  return {};
}

struct probe_result {
  bool ok = false;
  std::string detail;  // last line of stderr, or why it could not run
};

/// Runs the interpreter to check its version and that it imports grpc and
/// protobuf, and waits for it (blocking).
probe_result probe(const std::string& python) {
  // Run like a worker: nothing imported from the working directory.
  auto run = detail::run_captured(
    python,
    python_code_argv("if sys.version_info < (3, 10): sys.exit('Python ' + "
                     "sys.version.split()[0] + ' is too old: snakepit_bridge needs 3.10 or "
                     "newer')\n"
                     "import grpc, google.protobuf"),
    false, 65536);
  if (!run)
    return {false, "cannot run: " + describe(run.error()).message};
  if (run->exit_code == 0)
    return {true, {}};
  auto last = detail::last_line(run->output);
  if (last.empty())
    last = "exited with status " + std::to_string(run->exit_code);
  return {false, last};
}

std::mutex cache_mtx;
std::map<std::string, probe_result> cache;

probe_result cached_probe(const std::string& python) {
  {
    std::lock_guard<std::mutex> guard{cache_mtx};
    if (auto i = cache.find(python); i != cache.end())
      return i->second;
  }
  auto result = probe(python);
  if (result.ok) {  // failures are not cached: the user may fix them meanwhile
    std::lock_guard<std::mutex> guard{cache_mtx};
    cache.emplace(python, result);
  }
  return result;
}

constexpr const char* fix_hint =
  "Install Debian's packages (apt-get install python3-grpcio python3-protobuf) "
  "or point --python / SNAKEPIT_PYTHON / the pool's `python` key at an "
  "interpreter that can `import grpc` (for example /usr/bin/python3, or a venv "
  "made with --system-site-packages).";

} // namespace

caf::expected<std::string> locate_python(const std::string& configured) {
  std::vector<std::pair<std::string, std::string>> candidates;  // (source, name)
  if (!configured.empty()) {
    candidates.emplace_back("configured", configured);
  } else if (auto* env = std::getenv("SNAKEPIT_PYTHON"); env && *env) {
    candidates.emplace_back("SNAKEPIT_PYTHON", env);
  } else {
    candidates.emplace_back("PATH", "python3");
    candidates.emplace_back("default", "/usr/bin/python3");
  }
  std::string tried;
  for (auto& [source, name] : candidates) {
    auto path = resolve_command(name);
    std::string why;
    if (path.empty()) {
      why = "not found";
    } else {
      auto result = cached_probe(path);
      if (result.ok)
        return path;
      why = result.detail;
    }
    if (!tried.empty())
      tried += "; ";
    tried += name + (path.empty() || path == name ? "" : " (" + path + ")")
             + " [" + source + "]: " + why;
  }
  return make_error(errc::startup_failed,
                    "no Python interpreter that can import grpc was found (tried "
                      + tried + "). " + fix_hint);
}

} // namespace snakepit
