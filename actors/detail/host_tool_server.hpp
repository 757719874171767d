#pragma once

#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "snakepit/actors/host_tool.hpp"
#include "snakepit/actors/detail/shm_arena.hpp"

namespace snakepit::detail {

/// Serves `snakepit.bridge.v1.Host` (messages/bridge.proto) for one pool on a
/// unix socket: Python workers list and call the pool's host tools there.
/// Callback API: no thread of ours waits. Stopping cancels calls still open.
class host_tool_server {
public:
  static caf::expected<std::unique_ptr<host_tool_server>>
  start(const std::string& socket_path, std::vector<host_tool> tools,
        std::int64_t max_message_bytes, std::shared_ptr<shm_arena> shm = nullptr);

  ~host_tool_server();

  const std::string& socket_path() const noexcept {
    return socket_path_;
  }

private:
  struct impl;
  host_tool_server() = default;
  std::unique_ptr<impl> impl_;
  std::string socket_path_;
};

} // namespace snakepit::detail
