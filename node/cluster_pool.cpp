#include "snakepit/node/cluster_pool.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <type_traits>
#include <variant>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "snakepit/actors/detail/log.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit {

namespace {

using rejoin_atom = caf::atom_constant<caf::atom("clrejoin")>;
using refresh_atom = caf::atom_constant<caf::atom("clrefresh")>;
using expire_atom = caf::atom_constant<caf::atom("clexpire")>;

struct member_state {
  cluster_member_status status;
  /// Valid while connected.
  pool_actor handle;
  /// The handle lost last: a lookup that still finds it is stale (its
  /// supervisor has not restarted it yet).
  caf::actor_addr lost_handle;
  /// Lookups since it was lost that found no live handle: its back-off.
  std::size_t failed_lookups = 0;
  bool rejoin_pending = false;
  /// Its last status, for the cluster's aggregate (workers, size).
  pool_status last;
};

/// A call waiting in the cluster's queue.
struct queued_execute {
  execute_request request;
  caf::typed_response_promise<execute_reply> promise;
};
struct queued_stream {
  execute_request request;
  caf::actor consumer;
  caf::typed_response_promise<stream_handle> promise;
};
using queued_call = std::variant<queued_execute, queued_stream>;

/// A call sent to a member, until it answers.
struct open_call {
  std::size_t member = 0;
  /// The member's loss count when sent: an answer from an earlier
  /// incarnation does not free a slot of the current one.
  std::uint64_t incarnation = 0;
  caf::timestamp sent;
  /// Kept here, not in the reply handler, so that a stopped cluster answers.
  std::variant<caf::typed_response_promise<execute_reply>,
               caf::typed_response_promise<stream_handle>>
    promise;
};

struct session_entry {
  std::size_t member = 0;
  std::uint64_t incarnation = 0;
};

struct cluster_state {
  cluster_options opts;
  member_resolver resolve;
  std::vector<member_state> members;
  std::map<std::uint64_t, queued_call> queue;
  std::uint64_t next_seq = 0;
  std::map<std::uint64_t, open_call> open;
  std::uint64_t next_call = 0;
  std::map<std::string, session_entry> sessions;
  std::size_t round_robin = 0;
  std::uint64_t served = 0;
  std::uint64_t failed = 0;
  std::uint64_t queue_full = 0;
  std::uint64_t queue_timeouts = 0;
  caf::timestamp started = caf::make_timestamp();
  std::minstd_rand rng{std::random_device{}()};
  static inline const char* name = "snakepit.cluster_pool";
};

using cluster_actor = pool_actor::extend<caf::reacts_to<rejoin_atom, std::size_t>,
                                         caf::reacts_to<refresh_atom>,
                                         caf::reacts_to<expire_atom, std::uint64_t>>;
using self_ptr = cluster_actor::stateful_pointer<cluster_state>;

std::string where(const member_state& m) {
  return m.status.node.empty() ? std::string{"in this process"}
                               : fmt::format("on node {}", m.status.node);
}

/// The connected member with the most free slots; with `any`, the least
/// loaded connected one even when none is free.
std::optional<std::size_t> pick(cluster_state& st, bool any = false) {
  std::optional<std::size_t> best;
  long best_free = 0;
  auto n = st.members.size();
  for (std::size_t k = 0; k < n; ++k) {
    auto i = (st.round_robin + k) % n;
    auto& m = st.members[i].status;
    if (!m.connected)
      continue;
    auto free = static_cast<long>(m.capacity) - static_cast<long>(m.in_flight);
    if ((free > 0 || any) && (!best || free > best_free)) {
      best = i;
      best_free = free;
    }
  }
  // Ties go round the members rather than to the first.
  st.round_robin = (st.round_robin + 1) % std::max<std::size_t>(n, 1);
  return best;
}

caf::error member_gone(const cluster_state& st, std::size_t i, const caf::error& why) {
  auto& m = st.members[i];
  return make_error(errc::node_down,
                    fmt::format("cluster '{}': member '{}' ({}) went away with the call ({}); "
                                "it may or may not have run",
                                st.opts.name, m.status.name, where(m), caf::to_string(why)));
}

void dispatch(self_ptr self);
void lose_member(self_ptr self, std::size_t i, const caf::error& reason);

/// Frees the call's slot, records its outcome and hands back its promise;
/// none when it is no longer open.
template <class Reply>
std::optional<caf::typed_response_promise<Reply>> close_call(self_ptr self, std::uint64_t id,
                                                             bool ok) {
  auto& st = self->state;
  auto i = st.open.find(id);
  if (i == st.open.end())
    return std::nullopt;
  auto& m = st.members[i->second.member];
  if (m.status.lost == i->second.incarnation && m.status.in_flight > 0)
    --m.status.in_flight;
  if (ok) {
    ++m.status.served;
    ++st.served;
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(caf::make_timestamp()
                                                                     - i->second.sent)
                .count();
    auto& avg = m.status.latency_us;
    avg = avg == 0 ? static_cast<std::uint64_t>(us)
                   : (avg * 7 + static_cast<std::uint64_t>(us)) / 8;
  } else {
    ++m.status.failed;
    ++st.failed;
  }
  auto promise = std::get<caf::typed_response_promise<Reply>>(std::move(i->second.promise));
  st.open.erase(i);
  return promise;
}

/// Sends `xs` to member `i` as one call answered through `promise`.
template <class Reply, class... Ts>
void send_call(self_ptr self, std::size_t i, caf::typed_response_promise<Reply> promise,
               Ts&&... xs) {
  auto& st = self->state;
  auto& m = st.members[i];
  ++m.status.in_flight;
  auto id = st.next_call++;
  auto incarnation = m.status.lost;
  st.open.emplace(id, open_call{i, incarnation, caf::make_timestamp(), std::move(promise)});
  self->request(m.handle, caf::infinite, std::forward<Ts>(xs)...)
    .then(
      [self, id](Reply& answer) {
        if (auto p = close_call<Reply>(self, id, true))
          p->deliver(std::move(answer));
        dispatch(self);
      },
      [self, id, i, incarnation](caf::error& err) {
        auto p = close_call<Reply>(self, id, false);
        if (!p)
          return;
        bool gone = err == caf::sec::request_receiver_down
                    || err == caf::exit_reason::remote_link_unreachable;
        if (gone)
          err = member_gone(self->state, i, err);
        // The member's node is gone: its stand-in fails the open calls before
        // its own exit reaches us. Queued calls must not follow them there.
        if ((gone || is(err, errc::node_down))
            && self->state.members[i].status.lost == incarnation)
          lose_member(self, i, err);
        p->deliver(std::move(err));
        dispatch(self);
      });
}

void send_queued(self_ptr self, std::size_t i, queued_call& call) {
  if (auto* e = std::get_if<queued_execute>(&call))
    send_call(self, i, e->promise, execute_atom::value, std::move(e->request));
  else {
    auto& s = std::get<queued_stream>(call);
    send_call(self, i, s.promise, execute_stream_atom::value, std::move(s.request),
              std::move(s.consumer));
  }
}

/// Sends queued calls, oldest first, while a member has a free slot.
void dispatch(self_ptr self) {
  auto& st = self->state;
  while (!st.queue.empty()) {
    auto i = pick(st);
    if (!i)
      return;
    auto call = std::move(st.queue.begin()->second);
    st.queue.erase(st.queue.begin());
    send_queued(self, *i, call);
  }
}

template <class Reply>
void fail(self_ptr self, caf::typed_response_promise<Reply>& promise, caf::error err) {
  ++self->state.failed;
  promise.deliver(std::move(err));
}

/// A call for no session: to the freest member now, else into the queue.
void admit(self_ptr self, queued_call call) {
  auto& st = self->state;
  if (st.queue.empty())
    if (auto i = pick(st)) {
      send_queued(self, *i, call);
      return;
    }
  auto& request = std::visit([](auto& c) -> execute_request& { return c.request; }, call);
  if (st.queue.size() >= st.opts.queue_max) {
    ++st.queue_full;
    auto err = make_error(errc::pool_saturated,
                          fmt::format("cluster '{}': its queue is full ({} calls wait for a "
                                      "free member; queue_max); retry later or add members",
                                      st.opts.name, st.opts.queue_max));
    std::visit([&](auto& c) { fail(self, c.promise, err); }, call);
    return;
  }
  auto now = caf::make_timestamp();
  auto wait = std::min<caf::timespan>(st.opts.queue_timeout, request.deadline - now);
  auto seq = st.next_seq++;
  st.queue.emplace(seq, std::move(call));
  self->delayed_send(self, std::max(wait, caf::timespan{0}), expire_atom::value, seq);
}

/// A call of a session goes to the member that holds it.
template <class Reply>
void route_session(self_ptr self, execute_request& request,
                   caf::typed_response_promise<Reply>& promise,
                   const std::function<void(std::size_t, execute_request&)>& send) {
  auto& st = self->state;
  auto s = st.sessions.find(request.session_id);
  if (s == st.sessions.end()) {
    fail(self, promise,
         make_error(errc::session_unknown,
                    fmt::format("cluster '{}' has no open session '{}': open it on the "
                                "cluster (open_session) before calling with it",
                                st.opts.name, request.session_id)));
    return;
  }
  auto& m = st.members[s->second.member];
  if (m.status.connected && m.status.lost == s->second.incarnation) {
    send(s->second.member, request);
    return;
  }
  if (st.opts.affinity != affinity_mode::hint) {
    fail(self, promise,
         make_error(errc::session_lost,
                    fmt::format("cluster '{}': session '{}' was on member '{}' ({}), which "
                                "was lost with the session's state; open a new session",
                                st.opts.name, request.session_id, m.status.name, where(m))));
    return;
  }
  // hint: the session goes on elsewhere, without its Python state.
  auto i = pick(st, true);
  if (!i) {
    fail(self, promise,
         make_error(errc::node_down,
                    fmt::format("cluster '{}': no member is connected to take session '{}'",
                                st.opts.name, request.session_id)));
    return;
  }
  auto& to = st.members[*i];
  self->request(to.handle, caf::infinite, open_session_atom::value, request.session_id)
    .then([](const std::string&) {}, [](const caf::error&) {});
  s->second = session_entry{*i, to.status.lost};
  request.session_moved = true;
  send(*i, request);
}

void schedule_rejoin(self_ptr self, std::size_t i) {
  auto& st = self->state;
  auto& m = st.members[i];
  if (m.rejoin_pending)
    return;
  m.rejoin_pending = true;
  // The first wait is `min` (restart_backoff's second step), doubling after.
  std::uniform_real_distribution<double> unit{0.0, 1.0};
  auto delay = st.opts.rejoin_backoff.delay(++m.failed_lookups + 1, unit(st.rng));
  self->delayed_send(self, delay, rejoin_atom::value, i);
}

void lose_member(self_ptr self, std::size_t i, const caf::error& reason) {
  auto& st = self->state;
  auto& m = st.members[i];
  if (!m.status.connected)
    return;
  // Its calls still open (the one whose failure told us is already closed).
  auto running = std::count_if(st.open.begin(), st.open.end(), [&](auto& kv) {
    return kv.second.member == i && kv.second.incarnation == m.status.lost;
  });
  m.status.connected = false;
  m.status.capacity = 0;
  m.status.in_flight = 0;
  ++m.status.lost;
  m.lost_handle = m.handle.address();
  m.handle = nullptr;
  detail::log_warning(st.opts.name,
                      "cluster lost member '{}' ({}): {}; {} more call(s) running there fail "
                      "node_down, {} queued call(s) wait for the other members",
                      m.status.name, where(m), caf::to_string(reason), running,
                      st.queue.size());
  m.failed_lookups = 0;
  schedule_rejoin(self, i);
}

void join_member(self_ptr self, std::size_t i, pool_actor handle, const pool_status& ps) {
  auto& st = self->state;
  auto& m = st.members[i];
  if (m.status.connected)
    return;
  m.handle = handle;
  self->monitor(handle);
  m.status.connected = true;
  m.status.capacity = ps.capacity;
  m.status.node = ps.node;
  m.last = ps;
  m.failed_lookups = 0;
  ++m.status.joins;
  detail::log_info(st.opts.name, "cluster member '{}' {} ({}, capacity {})", m.status.name,
                   m.status.joins == 1 ? "joined" : "rejoined", where(m), ps.capacity);
  dispatch(self);
}

pool_status cluster_status(const cluster_state& st) {
  pool_status out;
  out.name = st.opts.name;
  out.queue_max = st.opts.queue_max;
  out.queued = static_cast<std::uint32_t>(st.queue.size());
  out.served = st.served;
  out.failed = st.failed;
  out.queue_full = st.queue_full;
  out.queue_timeouts = st.queue_timeouts;
  out.sessions = static_cast<std::uint32_t>(st.sessions.size());
  out.uptime = caf::make_timestamp() - st.started;
  bool any = false;
  for (auto& m : st.members) {
    out.members.push_back(m.status);
    if (!m.status.connected)
      continue;
    any = true;
    out.size += m.last.size;
    out.ready += m.last.ready;
    out.capacity += m.status.capacity;
    out.busy += m.status.in_flight;
    // Workers stay in their members' own statuses: listed here too, they
    // would be counted twice in metrics.
  }
  out.state = any ? "ready" : "starting";
  return out;
}

cluster_actor::behavior_type cluster_behavior(self_ptr self, cluster_options opts,
                                              member_resolver resolve) {
  auto& init = self->state;
  init.opts = std::move(opts);
  init.resolve = std::move(resolve);
  for (auto& name : init.opts.members) {
    member_state m;
    m.status.name = name;
    init.members.push_back(std::move(m));
  }
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& members = self->state.members;
    for (std::size_t i = 0; i < members.size(); ++i)
      if (members[i].status.connected && members[i].handle.address() == msg.source)
        lose_member(self, i, msg.reason);
  });
  // Stopped: answer every call it holds, open or queued.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& st = self->state;
    auto err = make_error(errc::pool_stopped,
                          fmt::format("cluster '{}' was stopped ({}) with the call open; it "
                                      "may or may not have run",
                                      st.opts.name, caf::to_string(msg.reason)));
    for (auto& [id, call] : st.open)
      std::visit([&](auto& p) { p.deliver(err); }, call.promise);
    st.open.clear();
    for (auto& [seq, call] : st.queue)
      std::visit([&](auto& c) { c.promise.deliver(err); }, call);
    st.queue.clear();
    self->quit(msg.reason);
  });
  for (std::size_t i = 0; i < init.members.size(); ++i)
    self->send(self, rejoin_atom::value, i);
  self->delayed_send(self, init.opts.status_interval, refresh_atom::value);
  auto with_deadline = [self](execute_request& r) {
    if (r.deadline == caf::timestamp{})
      r.deadline = caf::make_timestamp() + self->state.opts.request_timeout;
  };
  return {
    [self, with_deadline](execute_atom, execute_request& r) {
      auto promise = self->make_response_promise<execute_reply>();
      with_deadline(r);
      if (!r.session_id.empty())
        route_session(self, r, promise, [self, promise](std::size_t i, execute_request& req) {
          send_call(self, i, promise, execute_atom::value, std::move(req));
        });
      else
        admit(self, queued_execute{std::move(r), promise});
      return promise;
    },
    [self, with_deadline](execute_stream_atom, execute_request& r, caf::actor& consumer) {
      auto promise = self->make_response_promise<stream_handle>();
      with_deadline(r);
      if (!r.session_id.empty())
        route_session(self, r, promise,
                      [self, promise, consumer](std::size_t i, execute_request& req) {
                        send_call(self, i, promise, execute_stream_atom::value, std::move(req),
                                  consumer);
                      });
      else
        admit(self, queued_stream{std::move(r), std::move(consumer), promise});
      return promise;
    },
    [self](status_atom) { return cluster_status(self->state); },
    // Ready as soon as it runs: calls wait in its queue for members.
    [self](ready_atom) { return cluster_status(self->state); },
    [self](recycle_atom, const std::string& worker, const std::string& reason) {
      // The worker is on one member: ask every connected one.
      auto promise = self->make_response_promise<bool>();
      struct tally {
        std::size_t left = 0;
        bool any = false;
      };
      auto t = std::make_shared<tally>();
      for (auto& m : self->state.members)
        if (m.status.connected)
          ++t->left;
      if (t->left == 0) {
        promise.deliver(false);
        return promise;
      }
      for (auto& m : self->state.members) {
        if (!m.status.connected)
          continue;
        self->request(m.handle, std::chrono::seconds{30}, recycle_atom::value, worker, reason)
          .then(
            [t, promise](bool found) mutable {
              t->any = t->any || found;
              if (--t->left == 0)
                promise.deliver(t->any);
            },
            [t, promise](const caf::error&) mutable {
              if (--t->left == 0)
                promise.deliver(t->any);
            });
      }
      return promise;
    },
    [self](open_session_atom, std::string& id) {
      auto promise = self->make_response_promise<std::string>();
      auto& st = self->state;
      auto i = pick(st, true);
      if (!i) {
        promise.deliver(make_error(errc::node_down,
                                   fmt::format("cluster '{}': no member is connected to hold "
                                               "a session",
                                               st.opts.name)));
        return promise;
      }
      auto incarnation = st.members[*i].status.lost;
      self->request(st.members[*i].handle, caf::infinite, open_session_atom::value, id)
        .then(
          [self, promise, i, incarnation](std::string& opened) mutable {
            self->state.sessions[opened] = session_entry{*i, incarnation};
            promise.deliver(std::move(opened));
          },
          [self, promise, i](caf::error& err) mutable {
            if (err == caf::sec::request_receiver_down)
              err = member_gone(self->state, *i, err);
            promise.deliver(std::move(err));
          });
      return promise;
    },
    [self](close_session_atom, std::string& id) {
      auto promise = self->make_response_promise<bool>();
      auto& st = self->state;
      auto s = st.sessions.find(id);
      if (s == st.sessions.end()) {
        promise.deliver(false);
        return promise;
      }
      auto entry = s->second;
      st.sessions.erase(s);
      auto& m = st.members[entry.member];
      if (!m.status.connected || m.status.lost != entry.incarnation) {
        promise.deliver(true);  // its state went with its member
        return promise;
      }
      self->request(m.handle, caf::infinite, close_session_atom::value, id)
        .then([promise](bool closed) mutable { promise.deliver(closed); },
              [promise](caf::error& err) mutable { promise.deliver(std::move(err)); });
      return promise;
    },
    [self](list_tools_atom) {
      auto promise = self->make_response_promise<std::vector<tool_spec>>();
      auto i = pick(self->state, true);
      if (!i) {
        promise.deliver(make_error(errc::node_down,
                                   fmt::format("cluster '{}': no member is connected to list "
                                               "its tools",
                                               self->state.opts.name)));
        return promise;
      }
      self->request(self->state.members[*i].handle, caf::infinite, list_tools_atom::value)
        .then([promise](std::vector<tool_spec>& tools) mutable { promise.deliver(tools); },
              [promise](caf::error& err) mutable { promise.deliver(std::move(err)); });
      return promise;
    },
    [self](rejoin_atom, std::size_t i) {
      auto& st = self->state;
      auto& m = st.members[i];
      m.rejoin_pending = false;
      if (m.status.connected)
        return;
      auto handle = st.resolve ? st.resolve(m.status.name) : std::nullopt;
      if (!handle || !*handle || handle->address() == m.lost_handle) {
        schedule_rejoin(self, i);
        return;
      }
      auto h = *handle;
      m.rejoin_pending = true;  // until this lookup is answered
      self->request(h, std::chrono::seconds{5}, status_atom::value)
        .then(
          [self, i, h](pool_status& ps) {
            self->state.members[i].rejoin_pending = false;
            join_member(self, i, h, ps);
          },
          [self, i](const caf::error&) {
            self->state.members[i].rejoin_pending = false;
            schedule_rejoin(self, i);
          });
    },
    [self](refresh_atom) {
      auto& st = self->state;
      for (std::size_t i = 0; i < st.members.size(); ++i) {
        auto& m = st.members[i];
        if (!m.status.connected)
          continue;
        auto incarnation = m.status.lost;
        self->request(m.handle, st.opts.status_interval * 4, status_atom::value)
          .then(
            [self, i, incarnation](pool_status& ps) {
              auto& member = self->state.members[i];
              if (!member.status.connected || member.status.lost != incarnation)
                return;
              member.status.capacity = ps.capacity;
              member.last = std::move(ps);
              dispatch(self);
            },
            [](const caf::error&) {});
      }
      self->delayed_send(self, st.opts.status_interval, refresh_atom::value);
    },
    [self](expire_atom, std::uint64_t seq) {
      auto& st = self->state;
      auto q = st.queue.find(seq);
      if (q == st.queue.end())
        return;
      auto call = std::move(q->second);
      st.queue.erase(q);
      ++st.queue_timeouts;
      auto& request = std::visit([](auto& c) -> execute_request& { return c.request; }, call);
      bool deadline = caf::make_timestamp() >= request.deadline;
      auto connected = std::count_if(st.members.begin(), st.members.end(),
                                     [](auto& m) { return m.status.connected; });
      auto err = deadline
                   ? make_error(errc::timeout,
                                fmt::format("cluster '{}': the call's deadline passed while it "
                                            "waited for a free member ({} of {} connected)",
                                            st.opts.name, connected, st.members.size()))
                   : make_error(errc::pool_saturated,
                                fmt::format("cluster '{}': no member had a free slot within "
                                            "queue_timeout ({} ms; {} of {} members "
                                            "connected); retry later or add members",
                                            st.opts.name,
                                            std::chrono::duration_cast<std::chrono::milliseconds>(
                                              st.opts.queue_timeout)
                                              .count(),
                                            connected, st.members.size()));
      std::visit([&](auto& c) { fail(self, c.promise, err); }, call);
    },
  };
}

} // namespace

pool_actor spawn_cluster_pool(caf::actor_system& sys, cluster_options options,
                              member_resolver resolve) {
  return caf::actor_cast<pool_actor>(
    sys.spawn(cluster_behavior, std::move(options), std::move(resolve)));
}

} // namespace snakepit
