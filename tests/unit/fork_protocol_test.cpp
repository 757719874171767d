// The host's half of the fork server's control protocol: requests it refuses to encode, and
// what it makes of well-formed, malformed and hostile messages from a server.

#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "snakepit/actors/detail/fork_protocol.hpp"

using namespace snakepit;
using namespace snakepit::detail;

namespace {

struct socket_pair {
  unique_fd host;
  unique_fd server;
  socket_pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0);
    host.reset(fds[0]);
    server.reset(fds[1]);
  }
  void from_server(std::string_view data, std::vector<int> fds = {}) {
    REQUIRE(send_fork_message(server.get(), data, fds.data(), fds.size()) == 0);
  }
};

std::string fields(std::initializer_list<std::string_view> xs) {
  std::string out;
  for (auto x : xs) {
    if (!out.empty())
      out += '\0';
    out += x;
  }
  return out;
}

} // namespace

TEST_SUITE("fork_protocol") {

TEST_CASE("a fork request carries args, env and the working dir, NUL-separated") {
  process_spec spec;
  spec.args = {"--adapter", "a.B"};
  spec.env = {{"K", "v w"}};
  spec.working_dir = "/";
  auto req = encode_fork_request(42, spec);
  REQUIRE(req);
  CHECK(*req == fields({"fork", "42", "/", "2", "--adapter", "a.B", "1", "K", "v w"}));
}

TEST_CASE("requests that cannot travel are refused with the reason") {
  process_spec spec;
  spec.args = {std::string{"a\0b", 3}};
  auto nul = encode_fork_request(1, spec);
  REQUIRE_FALSE(nul);
  CHECK(caf::to_string(nul.error()).find("NUL") != std::string::npos);
  spec.args = {"ok"};
  spec.env = {{"A=B", "x"}};
  CHECK_FALSE(encode_fork_request(1, spec));
  spec.env = {{"BIG", std::string(fork_message_bytes_max, 'x')}};
  auto big = encode_fork_request(1, spec);
  REQUIRE_FALSE(big);
  CHECK(caf::to_string(big.error()).find("fork_message_bytes_max") != std::string::npos);
}

TEST_CASE("replies are parsed; malformed and hostile ones are invalid, never trusted") {
  socket_pair sp;
  CHECK_FALSE(receive_fork_message(sp.host.get()));  // nothing waiting: no block
  // forked, with its pidfd (any descriptor here)
  sp.from_server(fields({"forked", "7", "1234"}), {sp.server.get()});
  auto forked = receive_fork_message(sp.host.get());
  REQUIRE(forked);
  CHECK(forked->what == fork_message::kind::forked);
  CHECK(forked->req == 7);
  CHECK(forked->pid == 1234);
  CHECK(forked->pidfd);
  sp.from_server(fields({"exit", "1234", "1", "9"}));
  auto exited = receive_fork_message(sp.host.get());
  REQUIRE(exited);
  CHECK(exited->what == fork_message::kind::exited);
  CHECK(exited->signaled);
  CHECK(exited->code == 9);
  sp.from_server(fields({"failed", "8", "fork(): no memory"}));
  auto failed = receive_fork_message(sp.host.get());
  REQUIRE(failed);
  CHECK(failed->what == fork_message::kind::failed);
  CHECK(failed->text == "fork(): no memory");
  // forked without a pidfd, a negative pid, a bad number, an unknown verb, extra fields
  for (auto bad : {fields({"forked", "7", "1234"}), fields({"forked", "7", "-1"}),
                   fields({"exit", "12x", "0", "0"}), fields({"exit", "1", "2", "0"}),
                   fields({"hello"}), fields({"failed", "1", "a", "b"}), std::string{}}) {
    if (bad.empty())
      continue;  // an empty datagram reads as end of stream on SEQPACKET
    sp.from_server(bad);
    auto msg = receive_fork_message(sp.host.get());
    REQUIRE(msg);
    CHECK_MESSAGE(msg->what == fork_message::kind::invalid, bad);
  }
  // Descriptors on a message that does not take them are closed, not leaked.
  int probe = ::dup(sp.server.get());
  ::close(probe);
  sp.from_server(fields({"exit", "1", "0", "0"}), {sp.server.get(), sp.server.get()});
  REQUIRE(receive_fork_message(sp.host.get()));
  int next = ::dup(sp.server.get());
  CHECK(next == probe);  // the lowest free number is free again
  ::close(next);
  forked->pidfd.reset();  // a copy of the server's end, as it happens
  sp.server.reset();
  auto closed = receive_fork_message(sp.host.get());
  REQUIRE(closed);
  CHECK(closed->what == fork_message::kind::closed);
}

} // TEST_SUITE
