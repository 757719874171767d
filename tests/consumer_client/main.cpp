// Uses an installed snakepit::client: starts `snakepit run` on a tree file,
// calls a tool through its gateway, lists its pools and streams, then stops it.
//   client_consumer <snakepit binary> <tree.toml>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include <snakepit/client/client.hpp>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: client_consumer SNAKEPIT TREE\n";
    return 2;
  }
  int out[2];
  if (::pipe(out) != 0)
    return 2;
  pid_t tree = ::fork();
  if (tree == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::close(out[0]);
    ::close(out[1]);
    char print[] = "--print-address";
    char run[] = "run";
    char* args[] = {argv[1], run, print, argv[2], nullptr};
    ::execv(argv[1], args);
    ::_exit(127);
  }
  ::close(out[1]);
  std::string address;
  char c = 0;
  while (::read(out[0], &c, 1) == 1 && c != '\n')
    address += c;
  int rc = 1;
  if (auto cl = snakepit::client::connect(address)) {
    auto sum = cl->call("showcase", "add", {{"a", 40}, {"b", 2}});
    if (sum)
      std::cout << "result=" << sum->to_json() << std::endl;
    else
      std::cerr << sum.error().to_json() << std::endl;
    auto bad = cl->call("showcase", "no_such_tool");
    std::cout << "error=" << (bad ? std::string{"none"} : bad.error().kind) << std::endl;
    if (auto pools = cl->list_pools(); pools && !pools->empty())
      std::cout << "pool=" << pools->front().name << std::endl;
    std::uint64_t seen = 0;
    auto counted = cl->stream("showcase", "count", {{"n", 3}}, [&](snakepit::value&& x) {
      seen += x.as_int() == static_cast<std::int64_t>(seen) ? 1 : 0;
      return true;
    });
    std::cout << "streamed=" << (counted ? counted->items : 0) << "/" << seen << std::endl;
    rc = sum ? 0 : 1;
  } else {
    std::cerr << cl.error().to_json() << std::endl;
  }
  ::kill(tree, SIGTERM);
  int status = 0;
  ::waitpid(tree, &status, 0);
  return rc;
}
