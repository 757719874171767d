#include "snakepit/actors/python_command.hpp"

#include <unistd.h>

#include <climits>

namespace snakepit {

namespace {

/// Runs before any import: `-c` put '' (the working directory) first on
/// sys.path. Only that exact entry is removed, so a PYTHONSAFEPATH run (where
/// nothing was added) keeps its path intact.
constexpr const char* path_guard = "import sys\n"
                                   "if sys.path and sys.path[0] == '':\n"
                                   "    del sys.path[0]\n";

} // namespace

std::vector<std::string> python_module_argv(const std::string& module,
                                            const std::vector<std::string>& args) {
  // The module name is sys.argv[1] (data, not code); runpy then sets argv[0]
  // to the module's file as -m does, and the module sees the rest.
  std::vector<std::string> out{
    "-c",
    std::string{path_guard}
      + "import runpy\n"
        "del sys.argv[0]\n"
        "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n",
    module};
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

std::vector<std::string> python_code_argv(const std::string& code,
                                          const std::vector<std::string>& args) {
  std::vector<std::string> out{"-c", std::string{path_guard} + code};
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

std::string absolute_path(const std::string& path, const std::string& base) {
  if (path.empty() || path.front() == '/')
    return path;
  if (!base.empty())
    return base + "/" + path;
  char cwd[PATH_MAX];
  if (::getcwd(cwd, sizeof cwd) == nullptr)
    return path;
  return std::string{cwd} + "/" + path;
}

} // namespace snakepit
