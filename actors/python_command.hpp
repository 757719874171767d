#pragma once

#include <string>
#include <vector>

namespace snakepit {

/// How snakepit starts every Python process (workers, the interpreter probe,
/// `snakepit doctor` and `libraries`) so that nothing is imported from the
/// directory the host happens to run in.
///
/// `python -m M` and `python -c C` put the working directory (or '') first
/// on `sys.path`, so a `grpc.py` planted there would run inside every worker.
/// Instead, a short fixed bootstrap runs under `-c` and removes that entry
/// before anything is imported, then runs the module as `-m` would; and the
/// process starts in `python_working_dir`. Adapters come only from
/// `python_path` and installed packages. (`-P` does the same but exists only
/// from Python 3.11; the bootstrap works on every supported version and keeps
/// PYTHONPATH and user site-packages, which `-I` would drop.)
///
/// Values are never pasted into code: they travel as argv entries.

/// The working directory of the Python processes snakepit starts: "/",
/// which every user may enter and nobody but root may write.
inline constexpr const char* python_working_dir = "/";

/// `argv[1..]` that runs `module` as `__main__` (like `python -m module`)
/// with `args` as its arguments and the working directory kept off sys.path.
std::vector<std::string> python_module_argv(const std::string& module,
                                            const std::vector<std::string>& args = {});

/// `argv[1..]` that runs the fixed `code` (like `python -c code`) with the
/// working directory kept off sys.path; `args` arrive as `sys.argv[1:]`.
std::vector<std::string> python_code_argv(const std::string& code,
                                          const std::vector<std::string>& args = {});

/// `path` made absolute against `base` (default: the host's working
/// directory), so that a relative `python_path` still means what the user
/// meant although Python runs elsewhere. Empty and absolute paths stay.
std::string absolute_path(const std::string& path, const std::string& base = {});

} // namespace snakepit
