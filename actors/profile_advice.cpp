#include "snakepit/actors/profile_advice.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace snakepit {

workload_observation observe(const pool_status& status) {
  workload_observation w;
  w.workers = static_cast<std::uint32_t>(std::max<std::size_t>(1, status.workers.size()));
  for (auto& worker : status.workers) {
    w.profile = worker.profile == "thread" ? worker_profile::thread : worker_profile::process;
    w.threads_per_worker = worker.capacity;
    w.gil_enabled = w.gil_enabled && worker.gil_enabled;
    w.calls += worker.served + worker.failed;
    w.python_wall += worker.python_wall_total;
    w.python_cpu += worker.python_cpu_total;
  }
  return w;
}

profile_advice advise_profile(const workload_observation& w) {
  profile_advice out;
  if (w.calls == 0 || w.python_wall.count() <= 0) {
    out.recommended = w.profile;
    out.reason = "no calls observed yet: keep the current profile and look again under load";
    return out;
  }
  out.cpu_share = static_cast<double>(w.python_cpu.count())
                  / static_cast<double>(w.python_wall.count());
  auto share = fmt::format("{:.0f}%", out.cpu_share * 100);
  auto per_call = w.python_wall / static_cast<caf::timespan::rep>(w.calls);
  if (per_call < tiny_call) {
    // Timer resolution and GIL switches decide the CPU share of such calls;
    // the transport, not the profile, sets what they cost.
    out.recommended = w.profile;
    out.reason = fmt::format("the tools take {:.0f} us per call, too little for the profile "
                             "to matter: keep the current one; for many small calls send map "
                             "requests (snakepit map, map_calls with chunk)",
                             std::chrono::duration<double, std::micro>(per_call).count());
    return out;
  }
  if (w.gil_enabled && w.profile == worker_profile::thread && w.threads_per_worker > 1
      && w.elapsed.count() > 0 && out.cpu_share < 0.5) {
    auto cores_per_worker = static_cast<double>(w.python_cpu.count())
                            / (static_cast<double>(w.elapsed.count()) * w.workers);
    if (cores_per_worker > 0.7) {
      out.recommended = worker_profile::process;
      out.reason = fmt::format("the calls wait for the GIL, not for I/O: each thread-profile "
                               "process burns {:.1f} CPU while a call gets only {} of its "
                               "wall time; use processes",
                               cores_per_worker, share);
      return out;
    }
  }
  if (out.cpu_share < 0.5) {
    out.recommended = worker_profile::thread;
    out.reason = fmt::format("the tools spend most of their time waiting (CPU {} of their "
                             "wall time): one thread-profile process serves many such calls "
                             "at once with far less memory than a process per call",
                             share);
    return out;
  }
  if (!w.gil_enabled) {
    out.recommended = worker_profile::thread;
    out.reason = fmt::format("CPU-bound tools (CPU {} of wall) on a free-threaded Python: "
                             "threads run them in parallel and share memory",
                             share);
    return out;
  }
  if (w.profile == worker_profile::thread && w.threads_per_worker > 1) {
    // Several threads busy and each still close to a full CPU: the work runs
    // in parallel, so it releases the GIL.
    out.recommended = worker_profile::thread;
    out.reason = fmt::format("CPU-bound tools keep {} CPU share per call with several "
                             "threads busy: they release the GIL (numpy, hashlib, C "
                             "extensions), so threads scale",
                             share);
    return out;
  }
  out.recommended = worker_profile::process;
  out.reason = fmt::format("CPU-bound tools (CPU {} of wall) on a Python with a GIL: "
                           "pure-Python CPU work does not scale in threads; use processes "
                           "(try the thread profile only if the work releases the GIL)",
                           share);
  return out;
}

} // namespace snakepit
