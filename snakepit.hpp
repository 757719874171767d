#pragma once

// snakepit: pools of supervised Python worker processes as CAF actors.
// One include for applications; each header is also usable on its own.

#include "snakepit/actors/log.hpp"
#include "snakepit/actors/pool.hpp"
#include "snakepit/actors/pool_config.hpp"
#include "snakepit/actors/profile_advice.hpp"
#include "snakepit/actors/worker_profile.hpp"
#include "snakepit/actors/python_locator.hpp"
#include "snakepit/actors/runtime_paths.hpp"
#include "snakepit/actors/scheduler_settings.hpp"
#include "snakepit/actors/telemetry.hpp"
#include "snakepit/actors/lifecycle.hpp"
#include "snakepit/messages/atoms.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/messages/execute_reply.hpp"
#include "snakepit/messages/execute_request.hpp"
#include "snakepit/messages/message_types.hpp"
#include "snakepit/messages/pool_actor.hpp"
#include "snakepit/messages/pool_status.hpp"
#include "snakepit/messages/value.hpp"
#include "snakepit/messages/worker_actor.hpp"
#include "snakepit/supervision/actor_registry.hpp"
#include "snakepit/supervision/supervisor.hpp"
#include "snakepit/supervision/tree.hpp"
#include "snakepit/supervision/tree_loader.hpp"
#include "snakepit/supervision/tree_spec.hpp"
