// The worker actor's list of its adapter's tools (ListTools, once per process).

#include "snakepit/actors/detail/worker_state.hpp"

namespace snakepit::worker_impl {

namespace {

std::vector<tool_spec> from_wire(const bridge::v1::ListToolsResponse& response) {
  std::vector<tool_spec> out;
  for (auto& t : response.tools()) {
    tool_spec spec;
    spec.name = t.name();
    spec.description = t.description();
    spec.returns = t.returns();
    spec.streaming = t.streaming();
    for (auto& p : t.parameters()) {
      parameter_spec param;
      param.name = p.name();
      param.type = p.type();
      param.required = p.required();
      param.description = p.description();
      if (p.has_default_value())
        param.default_value = detail::from_proto(p.default_value());
      spec.parameters.push_back(std::move(param));
    }
    out.push_back(std::move(spec));
  }
  return out;
}

} // namespace

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
                                            ok ? from_wire(response) : std::vector<tool_spec>{},
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
