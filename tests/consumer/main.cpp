// Uses an installed snakepit: starts a pool of the showcase adapter and adds.
#include <iostream>

#include <caf/all.hpp>
#include <snakepit/snakepit.hpp>

int main() {
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};
  snakepit::pool_config pc;
  pc.name = "consumer";
  pc.adapter = "snakepit_bridge.showcase.ShowcaseAdapter";
  pc.size = 1;
  auto pool = snakepit::start_pool(sys, pc);
  if (!pool) {
    std::cerr << snakepit::describe(pool.error()).to_json() << std::endl;
    return 1;
  }
  std::cout << "package_dir=" << snakepit::python_package_dir() << std::endl;
  caf::scoped_actor self{sys};
  int rc = 1;
  self->request(*pool, caf::infinite, snakepit::execute_atom::value,
                snakepit::make_request("add", {{"a", 40}, {"b", 2}}))
    .receive(
      [&](snakepit::execute_reply& r) {
        std::cout << "result=" << r.result.to_json() << std::endl;
        rc = 0;
      },
      [&](caf::error& e) { std::cerr << snakepit::describe(e).to_json() << std::endl; });
  self->send_exit(*pool, caf::exit_reason::user_shutdown);
  return rc;
}
