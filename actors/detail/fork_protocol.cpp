#include "snakepit/actors/detail/fork_protocol.hpp"

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include <sys/socket.h>

#include <caf/error.hpp>
#include <caf/sec.hpp>

namespace snakepit::detail {

namespace {

caf::error fork_error(std::string text) {
  return caf::make_error(caf::sec::runtime_error, std::move(text));
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

std::vector<std::string_view> split_fields(std::string_view data) {
  std::vector<std::string_view> fields;
  for (;;) {
    auto pos = data.find('\0');
    fields.push_back(data.substr(0, pos));
    if (pos == std::string_view::npos)
      return fields;
    data.remove_prefix(pos + 1);
  }
}

} // namespace

caf::expected<std::string> encode_fork_request(std::uint64_t req, const process_spec& spec) {
  std::string out = "fork";
  auto field = [&out](std::string_view text) -> bool {
    if (text.find('\0') != std::string_view::npos)
      return false;
    out += '\0';
    out += text;
    return true;
  };
  field(std::to_string(req));
  if (!field(spec.working_dir))
    return fork_error("working directory holds a NUL byte");
  field(std::to_string(spec.args.size()));
  for (auto& arg : spec.args)
    if (!field(arg))
      return fork_error("argument holds a NUL byte: \"" + arg.substr(0, arg.find('\0')) + "\"");
  field(std::to_string(spec.env.size()));
  for (auto& [key, value] : spec.env) {
    if (key.empty() || key.find('=') != std::string::npos || !field(key) || !field(value))
      return fork_error("invalid environment variable: \"" + key.substr(0, key.find('\0'))
                        + "\"");
  }
  if (out.size() > fork_message_bytes_max)
    return fork_error("fork request of " + std::to_string(out.size())
                      + " bytes exceeds fork_message_bytes_max ("
                      + std::to_string(fork_message_bytes_max) + "): shorten env or args");
  return out;
}

std::string encode_reap(int pid) {
  std::string out = "reap";
  out += '\0';
  out += std::to_string(pid);
  return out;
}

int send_fork_message(int sock, std::string_view data, const int* fds,
                      std::size_t fd_count) noexcept {
  iovec iov{const_cast<char*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * fork_request_fds)> control{};
  if (fd_count > 0) {
    if (fd_count > fork_request_fds)
      return EINVAL;
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fd_count);
    auto* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fd_count);
    std::memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * fd_count);
  }
  for (;;) {
    if (::sendmsg(sock, &msg, MSG_NOSIGNAL) >= 0)
      return 0;
    if (errno != EINTR)
      return errno;
  }
}

std::optional<fork_message> receive_fork_message(int sock) {
  std::vector<char> buf(fork_message_bytes_max);
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * fork_request_fds)> control{};
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return std::nullopt;
  fork_message out;
  std::vector<unique_fd> fds;
  for (auto* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
      continue;
    auto count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }
  if (n <= 0) {
    out.what = fork_message::kind::closed;
    return out;
  }
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    out.text = "truncated control message";
    return out;
  }
  auto fields = split_fields(std::string_view{buf.data(), static_cast<std::size_t>(n)});
  const auto& verb = fields[0];
  if (verb == "forked" && fields.size() == 3 && fds.size() == 1
      && parse_number(fields[1], out.req) && parse_number(fields[2], out.pid) && out.pid > 0) {
    out.what = fork_message::kind::forked;
    out.pidfd = std::move(fds[0]);
  } else if (verb == "failed" && fields.size() == 3 && parse_number(fields[1], out.req)) {
    out.what = fork_message::kind::failed;
    out.text = std::string{fields[2]};
  } else if (verb == "exit" && fields.size() == 4 && parse_number(fields[1], out.pid)
             && (fields[2] == "0" || fields[2] == "1") && parse_number(fields[3], out.code)) {
    out.what = fork_message::kind::exited;
    out.signaled = fields[2] == "1";
  } else {
    out.text = "unexpected control message \"" + std::string{verb.substr(0, 32)} + "\"";
  }
  return out;
}

} // namespace snakepit::detail
