// Calls a running tree through its gateway with snakepit::client (no CAF).
//   snakepit run --print-address examples/one_pool.toml   # prints ADDRESS
//   client_example ADDRESS
#include <chrono>
#include <future>
#include <iostream>
#include <vector>

#include <snakepit/client/client.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: client_example ADDRESS\n";
    return 2;
  }
  auto client = snakepit::client::connect(argv[1]);
  if (!client) {
    std::cerr << client.error().message << "\n";
    return 1;
  }
  // One call: a value, or a typed error.
  auto sum = client->call("showcase", "add", {{"a", 40}, {"b", 2}});
  if (!sum) {
    std::cerr << sum.error().kind << ": " << sum.error().message << "\n";
    return 1;
  }
  std::cout << "add: " << sum->as_int() << "\n"; // 42

  // A deadline, and the typed errors.
  snakepit::call_options quick;
  quick.timeout = std::chrono::milliseconds{300};
  auto slow = client->call("showcase", "sleep", {{"seconds", 3}}, quick);
  if (!slow && slow.error().code == snakepit::errc::timeout)
    std::cout << "sleep: timeout\n";
  auto oops = client->call("showcase", "fail", {{"exception", "KeyError"}});
  if (!oops)
    std::cout << "fail: " << oops.error().kind << " " << oops.error().python_type << "\n";

  // Without waiting: a future, or a callback on a thread of the client's.
  auto later = client->call_future("showcase", "add", {{"a", 1}, {"b", 2}});
  std::promise<std::string> echoed;
  client->call_async("showcase", "echo", {{"value", "hi"}}, {},
                     [&echoed](snakepit::result<snakepit::value> r) {
                       echoed.set_value(r ? r->to_json() : r.error().kind);
                     });
  std::cout << "future: " << later.get()->as_int() << "\n"; // 3
  std::cout << "callback: " << echoed.get_future().get() << "\n";

  // One tool over many argument sets: per-item outcomes, in order.
  std::vector<snakepit::value::map> items;
  for (int i = 0; i < 100; ++i)
    items.push_back({{"a", i}, {"b", 1}});
  if (auto mapped = client->map("showcase", "add", std::move(items)))
    std::cout << "map: " << mapped->size() << " items, last " << mapped->back()->as_int() << "\n";

  // A generator: a callback per item; return false to stop (closes it in Python).
  auto totals = client->stream("showcase", "count", {{"n", 5}}, [](snakepit::value&& x) {
    std::cout << "item " << x.to_json() << "\n";
    return true;
  });
  if (totals)
    std::cout << "stream: " << totals->items << " items\n";

  // A session: calls that name it run on the same worker.
  if (auto session = client->open_session("showcase")) {
    snakepit::call_options in_session;
    in_session.session_id = *session;
    auto pinned = client->call("showcase", "add", {{"a", 1}, {"b", 1}}, in_session);
    std::cout << "session: " << (pinned ? pinned->to_json() : pinned.error().kind) << "\n";
    (void) client->close_session("showcase", *session);
  }

  // What the tree has.
  if (auto pools = client->list_pools())
    for (auto& pool : *pools)
      std::cout << "pool " << pool.name << ": " << pool.tools.size() << " tools\n";
  return 0;
}
