#include "snakepit/messages/detail/tool_spec_proto.hpp"

#include "snakepit/messages/detail/value_proto.hpp"

namespace snakepit::detail {

tool_spec from_proto(const bridge::v1::ToolSpec& t) {
  tool_spec spec;
  spec.name = t.name();
  spec.description = t.description();
  spec.returns = t.returns();
  spec.streaming = t.streaming();
  spec.idempotent = t.idempotent();
  for (auto& p : t.parameters()) {
    parameter_spec param;
    param.name = p.name();
    param.type = p.type();
    param.required = p.required();
    param.description = p.description();
    if (p.has_default_value())
      param.default_value = from_proto(p.default_value());
    spec.parameters.push_back(std::move(param));
  }
  return spec;
}

std::vector<tool_spec> from_proto(const bridge::v1::ListToolsResponse& x) {
  std::vector<tool_spec> out;
  for (auto& t : x.tools())
    out.push_back(from_proto(t));
  return out;
}

void to_proto(const tool_spec& x, bridge::v1::ToolSpec* out) {
  out->set_name(x.name);
  out->set_description(x.description);
  out->set_returns(x.returns);
  out->set_streaming(x.streaming);
  out->set_idempotent(x.idempotent);
  for (auto& p : x.parameters) {
    auto* param = out->add_parameters();
    param->set_name(p.name);
    param->set_type(p.type);
    param->set_required(p.required);
    param->set_description(p.description);
    if (!p.required)
      to_proto(p.default_value, param->mutable_default_value());
  }
}

} // namespace snakepit::detail
