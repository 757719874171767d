#include "snakepit/actors/worker_profile.hpp"

namespace snakepit {

profile_traits traits_of(worker_profile profile, std::uint32_t threads_per_worker,
                         thread_check_mode check) {
  profile_traits out;
  if (profile == worker_profile::thread) {
    out.capacity = threads_per_worker;
    out.replace_when_stuck = false;
    out.worker_args = {"--profile", "thread"};
  }
  if (check != thread_check_mode::off) {
    out.worker_args.emplace_back("--thread-check");
    out.worker_args.emplace_back(to_string(check));
  }
  return out;
}

std::string to_string(worker_profile x) {
  return x == worker_profile::thread ? "thread" : "process";
}

std::optional<worker_profile> parse_worker_profile(std::string_view name) {
  if (name == "process")
    return worker_profile::process;
  if (name == "thread")
    return worker_profile::thread;
  return std::nullopt;
}

std::string to_string(thread_check_mode x) {
  switch (x) {
    case thread_check_mode::warn: return "warn";
    case thread_check_mode::strict: return "strict";
    default: return "off";
  }
}

std::optional<thread_check_mode> parse_thread_check_mode(std::string_view name) {
  if (name == "off")
    return thread_check_mode::off;
  if (name == "warn")
    return thread_check_mode::warn;
  if (name == "strict")
    return thread_check_mode::strict;
  return std::nullopt;
}

} // namespace snakepit
