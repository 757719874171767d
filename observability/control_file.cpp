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

#include "snakepit/actors/detail/trusted_files.hpp"
#include "snakepit/actors/run_registry.hpp"
#include "snakepit/actors/runtime_paths.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit {

namespace {

/// A control file is a small JSON object; anything larger is not ours.
constexpr std::size_t max_control_file_bytes = 64 * 1024;

} // namespace

caf::expected<std::string> write_control_file(const std::string& dir, const control_info& info) {
  auto reg = detail::trusted_dir::open(dir, true);
  if (!reg)
    return reg.error();
  auto name = fmt::format("{}.control", info.pid);
  auto path = dir + "/" + name;
  auto text = nlohmann::json{{"pid", info.pid},   {"start_time", info.start_time},
                             {"tree", info.tree}, {"file", info.file},
                             {"url", info.url},   {"token", info.token},
                             {"gateway", info.gateway}}
                .dump();
  reg->remove(name);  // a dead run's, with our pid: the directory is ours
  int fd = reg->create_file(name);
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
  auto reg = detail::trusted_dir::open(dir, false);
  if (!reg)
    return out;  // none, or not ours: nothing in it is believed
  for (auto& path : files_ending_with(dir, ".control")) {
    auto name = path.substr(dir.size() + 1);
    auto text = reg->read_file(name, max_control_file_bytes);
    if (!text)
      continue;  // not ours, or gone
    control_info info;
    try {
      auto j = nlohmann::json::parse(*text);
      info.pid = j.at("pid").get<std::int32_t>();
      info.start_time = j.at("start_time").get<std::uint64_t>();
      info.tree = j.value("tree", std::string{});
      info.file = j.value("file", std::string{});
      info.url = j.at("url").get<std::string>();
      info.token = j.value("token", std::string{});
      info.gateway = j.value("gateway", std::string{});
    } catch (const std::exception&) {
      continue;  // being written: leave it
    }
    if (info.pid <= 0 || process_start_time(info.pid) != info.start_time) {
      reg->remove(name);  // its run is gone
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
