#include "snakepit/node/remote_pool.hpp"

#include <cstdint>
#include <map>
#include <type_traits>
#include <variant>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "snakepit/messages/error.hpp"

namespace snakepit {

namespace {

using heartbeat_atom = caf::atom_constant<caf::atom("rpheartbt")>;

/// A caller waiting for the remote pool's answer.
using open_promise
  = std::variant<caf::typed_response_promise<execute_reply>,
                 caf::typed_response_promise<stream_handle>,
                 caf::typed_response_promise<pool_status>,
                 caf::typed_response_promise<bool>, caf::typed_response_promise<std::string>,
                 caf::typed_response_promise<std::vector<tool_spec>>>;

struct remote_pool_state {
  node_actor node;
  pool_actor pool;
  remote_pool_options options;
  std::map<std::uint64_t, open_promise> open;
  std::uint64_t next_id = 0;
  caf::timestamp last_heartbeat_answer;
  bool heartbeat_in_flight = false;
  static inline const char* name = "snakepit.remote_pool";
};

using self_ptr = pool_actor::extend<caf::reacts_to<heartbeat_atom>>::stateful_pointer<
  remote_pool_state>;

caf::error node_down(const remote_pool_state& st, const std::string& why) {
  return make_error(errc::node_down,
                    fmt::format("the node at {} running pool '{}' {}; a call that was there "
                                "may or may not have run",
                                st.options.node_address, st.options.pool, why));
}

/// Answers every call still open with `err`.
void fail_open_calls(remote_pool_state& st, const caf::error& err) {
  for (auto& [id, promise] : st.open)
    std::visit([&](auto& p) { p.deliver(err); }, promise);
  st.open.clear();
}

/// The node is gone: every open call fails, and the stand-in exits.
void lose_node(self_ptr self, const std::string& why) {
  auto err = node_down(self->state, why);
  fail_open_calls(self->state, err);
  self->quit(err);
}

/// Asks the remote pool, answering the caller through a promise kept until
/// the answer (or the node's loss).
template <class Reply, class... Ts>
caf::typed_response_promise<Reply> forward(self_ptr self, Ts&&... xs) {
  auto promise = self->make_response_promise<Reply>();
  auto id = self->state.next_id++;
  self->state.open.emplace(id, promise);
  self->request(self->state.pool, caf::infinite, std::forward<Ts>(xs)...)
    .then(
      [self, id](Reply& answer) {
        auto i = self->state.open.find(id);
        if (i == self->state.open.end())
          return;
        if constexpr (std::is_same_v<Reply, pool_status>) {
          // Its status says where it runs, under the name it has here.
          auto& opts = self->state.options;
          if (!opts.local_name.empty())
            answer.name = opts.local_name;
          answer.node = opts.node_address;
        }
        std::get<caf::typed_response_promise<Reply>>(i->second).deliver(std::move(answer));
        self->state.open.erase(i);
      },
      [self, id](caf::error& err) {
        auto i = self->state.open.find(id);
        if (i == self->state.open.end())
          return;
        // The pool went away with the call: its node is gone (or the pool
        // stopped there, which the node's lookup would tell).
        if (err == caf::sec::request_receiver_down
            || err == caf::exit_reason::remote_link_unreachable)
          err = node_down(self->state, "went away (" + caf::to_string(err) + ")");
        std::get<caf::typed_response_promise<Reply>>(i->second).deliver(std::move(err));
        self->state.open.erase(i);
      });
  return promise;
}

auto remote_pool_behavior(self_ptr self, node_actor node, pool_actor pool,
                          remote_pool_options options) {
  auto& st = self->state;
  st.node = std::move(node);
  st.pool = std::move(pool);
  st.options = std::move(options);
  st.last_heartbeat_answer = caf::make_timestamp();
  // Its connection dropping takes the pool's proxy down with it.
  self->monitor(st.pool);
  self->set_down_handler([self](caf::down_msg& msg) {
    if (msg.source == self->state.pool)
      lose_node(self, "went away (" + caf::to_string(msg.reason) + ")");
  });
  // Stopped (its tree stopping, its supervisor shutting it down): nothing
  // would answer the calls still open there; answer them now.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& state = self->state;
    auto err = make_error(errc::pool_stopped,
                          fmt::format("the stand-in of pool '{}' on node {} was stopped ({}) "
                                      "while the call was open there; it may or may not have "
                                      "run",
                                      state.options.pool, state.options.node_address,
                                      caf::to_string(msg.reason)));
    fail_open_calls(state, err);
    self->quit(msg.reason);
  });
  self->send(self, heartbeat_atom::value);
  using typed_behavior =
    typename pool_actor::extend<caf::reacts_to<heartbeat_atom>>::behavior_type;
  return typed_behavior{
    [self](execute_atom a, execute_request& r) {
      return forward<execute_reply>(self, a, std::move(r));
    },
    [self](status_atom a) { return forward<pool_status>(self, a); },
    [self](ready_atom a) { return forward<pool_status>(self, a); },
    [self](recycle_atom a, std::string& w, std::string& why) {
      return forward<bool>(self, a, std::move(w), std::move(why));
    },
    [self](open_session_atom a, std::string& id) {
      return forward<std::string>(self, a, std::move(id));
    },
    [self](close_session_atom a, std::string& id) {
      return forward<bool>(self, a, std::move(id));
    },
    [self](execute_stream_atom a, execute_request& r, caf::actor& consumer) {
      return forward<stream_handle>(self, a, std::move(r), std::move(consumer));
    },
    [self](list_tools_atom a) { return forward<std::vector<tool_spec>>(self, a); },
    [self](heartbeat_atom) {
      auto& s = self->state;
      auto silent = caf::make_timestamp() - s.last_heartbeat_answer;
      if (silent > s.options.heartbeat_timeout) {
        lose_node(self, fmt::format("answered no heartbeat for {} ms (heartbeat_timeout)",
                                    std::chrono::duration_cast<std::chrono::milliseconds>(silent)
                                      .count()));
        return;
      }
      if (!s.heartbeat_in_flight) {
        s.heartbeat_in_flight = true;
        self->request(s.node, s.options.heartbeat_timeout, node_info_atom::value)
          .then(
            [self](const std::string&, const std::vector<std::string>&) {
              self->state.heartbeat_in_flight = false;
              self->state.last_heartbeat_answer = caf::make_timestamp();
            },
            [self](caf::error&) { self->state.heartbeat_in_flight = false; });
      }
      self->delayed_send(self, s.options.heartbeat_interval, heartbeat_atom::value);
    },
  };
}

} // namespace

pool_actor spawn_remote_pool(caf::actor_system& sys, node_actor node, pool_actor pool,
                             remote_pool_options options) {
  return caf::actor_cast<pool_actor>(
    sys.spawn(remote_pool_behavior, std::move(node), std::move(pool), std::move(options)));
}

} // namespace snakepit
