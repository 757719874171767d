#pragma once
// Nodes for the benchmarks: `snakepit run` processes exporting a pool on a
// loopback port, started and killed by the bench.

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <caf/all.hpp>

#include "snakepit/snakepit.hpp"

namespace bench {

inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// `snakepit run` of a tree whose pool `bench` (`size` showcase workers) is
/// exported on `port`; its output goes to DIR/NAME.log.
inline pid_t start_node(const std::string& dir, const std::string& name, int port, int size) {
  auto file = dir + "/" + name + ".toml";
  std::ofstream{file} << "[supervisors.app]\nstrategy = \"one_for_one\"\nchildren = [\"bench\"]\n\n"
                         "[pools.bench]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n"
                      << "size = " << size << "\nqueue_timeout_ms = 120000\n\n[node]\nname = \""
                      << name << "\"\nlisten = \"127.0.0.1:" << port << "\"\nexport = [\"bench\"]\n";
  auto log = dir + "/" + name + ".log";
  pid_t pid = ::fork();
  if (pid == 0) {
    auto fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, STDERR_FILENO);
    ::dup2(fd, STDOUT_FILENO);
    ::execl(SNAKEPIT_BENCH_BIN, SNAKEPIT_BENCH_BIN, "run", file.c_str(), nullptr);
    ::_exit(127);
  }
  return pid;
}

/// The node's pool `bench`, once it answers (at most 20 s) and is ready.
inline caf::expected<snakepit::pool_actor>
connect_node(caf::actor_system& sys, int port, snakepit::remote_pool_options watch = {}) {
  caf::expected<snakepit::pool_actor> remote{caf::error{}};
  for (int i = 0; i < 100 && !remote; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds{200});
    remote = snakepit::connect_pool(sys, "127.0.0.1", static_cast<std::uint16_t>(port), "bench",
                                    watch);
  }
  if (remote) {
    caf::scoped_actor self{sys};
    self->request(*remote, std::chrono::seconds{60}, snakepit::ready_atom::value)
      .receive([](snakepit::pool_status&) {}, [](caf::error&) {});
  }
  return remote;
}

} // namespace bench
