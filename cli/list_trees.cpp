// snakepit ls: the trees `snakepit run` serves on this machine (this user's),
// from the run registry's control files.

#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "output.hpp"
#include "snakepit/actors/run_registry.hpp"
#include "snakepit/observability/control_file.hpp"

namespace snakepit::cli {

int run_list_trees(bool json) {
  auto runs = find_running_trees(run_registry::instance().dir());
  if (json) {
    auto out = nlohmann::json::array();
    for (auto& r : runs)
      out.push_back({{"pid", r.pid}, {"tree", r.tree}, {"file", r.file},
                     {"gateway", r.gateway}, {"control_url", r.url}});
    std::cout << out.dump() << std::endl;
    return exit_ok;
  }
  if (runs.empty()) {
    log_line("no running `snakepit run` of this user (registry " + run_registry::instance().dir()
             + ")");
    return exit_ok;
  }
  std::cout << fmt::format("{:<8} {:<16} {:<48} {}\n", "PID", "TREE", "GATEWAY", "FILE");
  for (auto& r : runs)
    std::cout << fmt::format("{:<8} {:<16} {:<48} {}\n", r.pid, r.tree,
                             r.gateway.empty() ? "-" : r.gateway, r.file);
  return exit_ok;
}

} // namespace snakepit::cli
