#include "snakepit/observability/control_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "snakepit/actors/run_registry.hpp"
#include "snakepit/actors/runtime_paths.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit {

caf::expected<std::string> write_control_file(const std::string& dir, const control_info& info) {
  auto path = fmt::format("{}/{}.control", dir, info.pid);
  auto text = nlohmann::json{{"pid", info.pid},   {"start_time", info.start_time},
                             {"tree", info.tree}, {"file", info.file},
                             {"url", info.url},   {"token", info.token}}
                .dump();
  ::unlink(path.c_str());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return make_error(errc::internal, fmt::format("cannot write {}: {}", path,
                                                  std::strerror(errno)));
  auto written = ::write(fd, text.data(), text.size());
  ::close(fd);
  if (written != static_cast<ssize_t>(text.size()))
    return make_error(errc::internal, fmt::format("cannot write {}", path));
  return path;
}

std::vector<control_info> find_running_trees(const std::string& dir) {
  std::vector<control_info> out;
  for (auto& path : files_ending_with(dir, ".control")) {
    std::ifstream in{path};
    std::stringstream text;
    text << in.rdbuf();
    control_info info;
    try {
      auto j = nlohmann::json::parse(text.str());
      info.pid = j.at("pid").get<std::int32_t>();
      info.start_time = j.at("start_time").get<std::uint64_t>();
      info.tree = j.value("tree", std::string{});
      info.file = j.value("file", std::string{});
      info.url = j.at("url").get<std::string>();
      info.token = j.value("token", std::string{});
    } catch (const std::exception&) {
      continue;  // another user's, or being written: leave it
    }
    if (process_start_time(info.pid) != info.start_time) {
      ::unlink(path.c_str());  // its run is gone
      continue;
    }
    out.push_back(std::move(info));
  }
  return out;
}

std::string make_control_token() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}{:08x}{:08x}", rd(), rd(), rd(), rd());
}

} // namespace snakepit
