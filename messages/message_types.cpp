#include "snakepit/messages/message_types.hpp"

#include <caf/all.hpp>

#include "snakepit/messages/error.hpp"
#include "snakepit/messages/execute_reply.hpp"
#include "snakepit/messages/execute_request.hpp"
#include "snakepit/messages/pool_actor.hpp"
#include "snakepit/messages/pool_status.hpp"
#include "snakepit/messages/stream.hpp"
#include "snakepit/messages/tool_spec_inspect.hpp"
#include "snakepit/messages/supervisor_actor.hpp"
#include "snakepit/messages/value.hpp"
#include "snakepit/messages/cluster_member_status.hpp"
#include "snakepit/messages/worker_status.hpp"

namespace snakepit {

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<value>("snakepit::value");
  cfg.add_message_type<execute_request>("snakepit::execute_request");
  cfg.add_message_type<execute_reply>("snakepit::execute_reply");
  cfg.add_message_type<stream_handle>("snakepit::stream_handle");
  cfg.add_message_type<stream_summary>("snakepit::stream_summary");
  cfg.add_message_type<tool_spec>("snakepit::tool_spec");
  cfg.add_message_type<std::vector<tool_spec>>("std::vector<snakepit::tool_spec>");
  cfg.add_message_type<worker_status>("snakepit::worker_status");
  cfg.add_message_type<std::vector<worker_status>>("std::vector<snakepit::worker_status>");
  cfg.add_message_type<cluster_member_status>("snakepit::cluster_member_status");
  cfg.add_message_type<std::vector<cluster_member_status>>(
    "std::vector<snakepit::cluster_member_status>");
  cfg.add_message_type<pool_status>("snakepit::pool_status");
  cfg.add_message_type<child_info>("snakepit::child_info");
  cfg.add_message_type<std::vector<child_info>>("std::vector<snakepit::child_info>");
  cfg.add_message_type<child_counts>("snakepit::child_counts");
  // Handles other nodes get (node_actor's lookup answers).
  cfg.add_message_type<pool_actor>("snakepit::pool_actor");
  cfg.add_error_category(error_category,
                         [](uint8_t code, caf::atom_value, const caf::message& ctx) {
                           std::string out = to_string(static_cast<errc>(code));
                           if (!ctx.empty() && ctx.match_element<std::string>(0)) {
                             out += ": ";
                             out += ctx.get_as<std::string>(0);
                           }
                           return out;
                         });
}

} // namespace snakepit
