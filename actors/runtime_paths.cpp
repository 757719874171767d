#include "snakepit/actors/runtime_paths.hpp"

#include "snakepit/actors/detail/trusted_files.hpp"
#include "snakepit/actors/run_registry.hpp"

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
    std::string parent = "/tmp";
    if (auto* env = std::getenv("SNAKEPIT_RUNTIME_PARENT"); env && *env)
      parent = env;
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

const std::string& runtime_dir() {
  static runtime_dir_holder holder;
  return holder.path;
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

std::string python_package_dir() {
  if (auto* env = std::getenv("SNAKEPIT_PYTHON_PACKAGE_DIR"); env && *env)
    return env;
  // An installed library finds the package under <prefix>/share, relative to
  // its own file (lib/ or lib/<multiarch>/).
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&python_package_dir), &info) != 0
      && info.dli_fname != nullptr) {
    auto lib_dir = dirname_of(info.dli_fname);
    for (const char* rel : {"/../share/snakepit/python", "/../../share/snakepit/python"}) {
      auto candidate = lib_dir + rel;
      if (is_dir(candidate + "/snakepit_bridge")) {
        char resolved[PATH_MAX];
        return ::realpath(candidate.c_str(), resolved) != nullptr ? resolved : candidate;
      }
    }
  }
  if (is_dir(std::string{SNAKEPIT_SOURCE_PYTHON_DIR} + "/snakepit_bridge"))
    return SNAKEPIT_SOURCE_PYTHON_DIR;
  return SNAKEPIT_INSTALLED_PYTHON_DIR;
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
