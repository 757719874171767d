#pragma once

// The host's half of the control protocol of a fork server (python -m
// snakepit_bridge.fork_server, whose docstring is the other half): one message per
// SOCK_SEQPACKET datagram, fields separated by NUL bytes, descriptors as SCM_RIGHTS.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

#include "snakepit/actors/detail/unique_fd.hpp"
#include "snakepit/actors/process_launcher.hpp"

namespace snakepit::detail {

/// Largest control message either way (the fork server's CONTROL_MESSAGE_BYTES_MAX).
constexpr std::size_t fork_message_bytes_max = 64 * 1024;

/// Descriptors a fork request carries: the child's stdout, stderr, ready fd and lifeline.
constexpr std::size_t fork_request_fds = 4;

/// "fork" request for `spec` (its args, env overrides and working dir); an error when a
/// field holds a NUL byte or the whole exceeds `fork_message_bytes_max`.
[[nodiscard]] caf::expected<std::string> encode_fork_request(std::uint64_t req,
                                                             const process_spec& spec);

/// "reap" request: the host is done with `pid`.
[[nodiscard]] std::string encode_reap(int pid);

/// One message from a fork server.
struct fork_message {
  enum class kind { forked, failed, exited, closed, invalid };
  kind what = kind::invalid;
  std::uint64_t req = 0;  ///< forked, failed
  int pid = 0;            ///< forked, exited
  bool signaled = false;  ///< exited
  int code = 0;           ///< exited
  std::string text;       ///< failed: the server's reason; invalid: what was wrong
  unique_fd pidfd;        ///< forked: a pidfd of the child
};

/// Sends one datagram with descriptors; 0 or an errno value.
[[nodiscard]] int send_fork_message(int sock, std::string_view data, const int* fds,
                                    std::size_t fd_count) noexcept;

/// Receives one message without blocking; nullopt when none is waiting. Descriptors that
/// do not belong to the message are closed.
[[nodiscard]] std::optional<fork_message> receive_fork_message(int sock);

} // namespace snakepit::detail
