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

namespace {

double seconds(caf::timespan t) {
  return std::chrono::duration<double>(t).count();
}

/// Starving or not, for calls whose CPU share is low; `reason` says why when
/// it is (or when it cannot be told).
struct starvation {
  bool starved = false;
  bool uncertain = false;
  std::string reason;
};

starvation judge_starvation(const workload_observation& w, const std::string& share) {
  starvation out;
  auto keep = fmt::format("keep the {} profile", to_string(w.profile));
  auto threads_would = w.profile == worker_profile::thread
                         ? "More threads would not help (they take turns at the GIL on the "
                           "same busy cores)"
                         : "The thread profile would not help (its threads would take turns at "
                           "the GIL on the same busy cores)";
  if (w.window.count() > 0 && w.window_tools_wall > w.window_tools_cpu) {
    // Measured: how much of the calls' time off a CPU was spent runnable.
    auto off_cpu = seconds(w.window_tools_wall - w.window_tools_cpu);
    auto queued = seconds(w.window_run_queue_wait) / off_cpu;
    if (queued >= starved_off_cpu_share) {
      out.starved = true;
      out.reason = fmt::format(
        "the calls are starved of CPU, not waiting: they get {} of their wall time on a CPU, "
        "and {:.0f}% of the rest they spend runnable in the run queue, waiting for a core. "
        "{}; {}, and run fewer busy processes than cores or give the machine more",
        share, std::min(queued, 1.0) * 100, threads_would, keep);
    }
    return out;
  }
  if (w.usable_cores > 0 && w.elapsed.count() > 0) {
    auto cores_used = seconds(w.python_cpu) / seconds(w.elapsed);
    if (cores_used >= starved_core_share * w.usable_cores) {
      out.starved = true;
      out.reason = fmt::format(
        "the calls are starved of CPU, not waiting: the tools use {:.1f} of the {:.0f} usable "
        "cores while each call gets {} of its wall time on a CPU. {}; {}, and run fewer busy "
        "processes than cores or give the machine more",
        cores_used, w.usable_cores, share, threads_would, keep);
      return out;
    }
  }
  if (w.cpu_pressure && *w.cpu_pressure >= uncertain_pressure) {
    out.uncertain = true;
    out.reason = fmt::format(
      "the calls get {} of their wall time on a CPU, but the machine's CPU pressure is {:.0f}% "
      "(runnable tasks waiting for a core), so waiting for I/O cannot be told from waiting for "
      "a CPU here: {}, and look again on a quieter machine or where the run queue can be read",
      share, *w.cpu_pressure * 100, keep);
  }
  return out;
}

} // namespace

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
    if (auto starving = judge_starvation(w, share); starving.starved || starving.uncertain) {
      out.cpu_starved = starving.starved;
      out.recommended = w.profile;
      out.reason = std::move(starving.reason);
      return out;
    }
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
