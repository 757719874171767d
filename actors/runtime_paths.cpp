#include "snakepit/actors/runtime_paths.hpp"

#include "snakepit/actors/detail/log.hpp"
#include "snakepit/actors/detail/trusted_files.hpp"
#include "snakepit/actors/run_registry.hpp"
#include "snakepit/messages/error.hpp"

#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace snakepit {

namespace {

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string dirname_of(const std::string& path) {
  auto pos = path.rfind('/');
  return pos == std::string::npos ? "." : path.substr(0, pos);
}

/// Owns the runtime directory; removes its (flat) contents at exit.
struct runtime_dir_holder {
  std::string path;

  runtime_dir_holder() {
    auto parent = runtime_parent();
    // Another user who may rename entries of the parent could swap our
    // directory for theirs and see (or serve) every worker socket.
    if (auto why = detail::unsafe_path_reason(parent, true); !why.empty())
      throw std::runtime_error("snakepit: refusing " + parent + " as the parent of the runtime "
                               "directory: " + why + "; set SNAKEPIT_RUNTIME_PARENT to a "
                               "directory only you (or root) can write, or a sticky one like "
                               "/tmp");
    std::string templ = parent + "/snakepit-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr)
      throw std::runtime_error("snakepit: cannot create runtime directory under "
                               + parent + ": " + std::strerror(errno));
    path = buf.data();
    // A later host removes it if this one dies without doing so.
    run_registry::instance().record_runtime_dir(path);
  }

  ~runtime_dir_holder() {
    detail::remove_owned_tree(path);
  }
};

} // namespace

std::string runtime_parent() {
  auto* env = std::getenv("SNAKEPIT_RUNTIME_PARENT");
  return env != nullptr && *env != '\0' ? std::string{env} : std::string{"/tmp"};
}

const std::string& runtime_dir() {
  static runtime_dir_holder holder;
  return holder.path;
}

caf::error ensure_runtime_dir() {
  try {
    (void) runtime_dir();
    return {};
  } catch (const std::exception& e) {
    return make_error(errc::bad_config, e.what());
  }
}

std::string next_socket_path(const std::string& dir) {
  static std::atomic<unsigned long> counter{0};
  return (dir.empty() ? runtime_dir() : dir) + "/w" + std::to_string(++counter) + ".sock";
}

std::string make_private_dir(const std::string& prefix) {
  static std::atomic<unsigned long> counter{0};
  auto path = runtime_dir() + "/" + prefix + std::to_string(++counter);
  if (::mkdir(path.c_str(), 0700) != 0)
    return {};
  return path;
}

void remove_private_dir(const std::string& dir) {
  if (!dir.empty())
    detail::remove_owned_tree(dir);
}

namespace {

/// The installed copy next to the library, else the source tree the library
/// was built from; only a directory no other user could have replaced (the
/// package runs in every worker).
std::string find_python_package_dir() {
  std::vector<std::string> candidates;
  // An installed library finds the package under <prefix>/share, relative to
  // its own file (lib/ or lib/<multiarch>/).
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&python_package_dir), &info) != 0
      && info.dli_fname != nullptr) {
    auto lib_dir = dirname_of(info.dli_fname);
    for (const char* rel : {"/../share/snakepit/python", "/../../share/snakepit/python"})
      candidates.push_back(lib_dir + rel);
  }
  candidates.emplace_back(SNAKEPIT_SOURCE_PYTHON_DIR);
  for (auto& candidate : candidates) {
    if (!is_dir(candidate + "/snakepit_bridge"))
      continue;
    if (auto why = detail::unsafe_path_reason(candidate + "/snakepit_bridge"); !why.empty()) {
      detail::log_warning("snakepit", "not using the snakepit_bridge package in {}: {}; "
                          "set SNAKEPIT_PYTHON_PACKAGE_DIR to a copy only you (or root) can "
                          "write", candidate, why);
      continue;
    }
    char resolved[PATH_MAX];
    return ::realpath(candidate.c_str(), resolved) != nullptr ? resolved : candidate;
  }
  return SNAKEPIT_INSTALLED_PYTHON_DIR;
}

} // namespace

std::string python_package_dir() {
  // The user's explicit choice is theirs to make.
  if (auto* env = std::getenv("SNAKEPIT_PYTHON_PACKAGE_DIR"); env && *env)
    return env;
  static const std::string found = find_python_package_dir();
  return found;
}

std::vector<std::string> files_ending_with(const std::string& dir, std::string_view suffix) {
  std::vector<std::string> out;
  auto* d = ::opendir(dir.c_str());
  if (d == nullptr)
    return out;
  while (auto* entry = ::readdir(d)) {
    std::string_view name = entry->d_name;
    if (name.size() > suffix.size()
        && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(dir + "/" + std::string{name});
  }
  ::closedir(d);
  return out;
}

} // namespace snakepit
