// The worker actor's list of its adapter's tools (ListTools, once per process).

#include "snakepit/actors/detail/worker_state.hpp"
#include "snakepit/messages/detail/tool_spec_proto.hpp"

namespace snakepit::worker_impl {


caf::result<std::vector<tool_spec>> on_list_tools(worker_pointer self) {
  auto& st = self->state;
  if (st.tools)
    return *st.tools;
  if (!st.channel || st.current != phase::ready)
    return make_error(errc::worker_crashed,
                      fmt::format("worker {} is {}, not ready", st.cfg.id, to_cstr(st.current)));
  auto promise = self->make_response_promise<std::vector<tool_spec>>();
  st.tools_waiting.push_back(promise);
  if (st.tools_waiting.size() == 1) {
    auto handle = caf::actor_cast<caf::actor>(self);
    st.channel->list_tools(std::chrono::seconds{10},
                           [handle](bool ok, const bridge::v1::ListToolsResponse& response) {
                             caf::anon_send(handle, list_tools_atom::value,
                                            ok ? detail::from_proto(response) : std::vector<tool_spec>{},
                                            ok);
                           });
  }
  return promise;
}

void on_tools_listed(worker_pointer self, std::vector<tool_spec>& tools, bool ok) {
  auto& st = self->state;
  auto waiting = std::move(st.tools_waiting);
  st.tools_waiting.clear();
  if (!ok) {
    for (auto& p : waiting)
      p.deliver(make_error(errc::internal,
                           fmt::format("worker {} did not list its tools in time", st.cfg.id)));
    return;
  }
  st.tools = std::move(tools);
  for (auto& p : waiting)
    p.deliver(*st.tools);
}

} // namespace snakepit::worker_impl
