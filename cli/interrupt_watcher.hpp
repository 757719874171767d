#pragma once

// How a command stops a long run on SIGINT or SIGTERM: the signals are blocked
// in every thread and taken by one watcher thread, which tells an actor.

#include <signal.h>

#include <atomic>
#include <functional>
#include <thread>

#include <caf/atom.hpp>

namespace snakepit::cli {

/// Sent to the actor running a command's calls when the user interrupts it.
using interrupt_atom = caf::atom_constant<caf::atom("interrupt")>;

/// The exit code of an interrupted command (128 + SIGINT, as shells report it).
inline constexpr int exit_interrupted = 130;

/// SIGINT and SIGTERM.
inline sigset_t interrupt_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

/// Blocks `interrupt_signals()` in this thread and every thread it starts from
/// now on. Call it before the actor system exists, so all its threads inherit
/// the mask and only an `interrupt_watcher` takes the signals.
inline void block_interrupt_signals() {
  auto set = interrupt_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

/// A thread that waits for an interrupt signal and then calls `on_signal`
/// once; until then it calls `on_tick` about every 100 ms (a progress line).
/// Destroying it stops and joins the thread.
class interrupt_watcher {
public:
  explicit interrupt_watcher(std::function<void()> on_signal,
                             std::function<void()> on_tick = {})
    : thread_([this, on_signal = std::move(on_signal), on_tick = std::move(on_tick)] {
        auto set = interrupt_signals();
        timespec tick{0, 100'000'000};
        while (!done_) {
          if (sigtimedwait(&set, nullptr, &tick) > 0) {
            on_signal();
            return;
          }
          if (on_tick && !done_)
            on_tick();
        }
      }) {
  }

  ~interrupt_watcher() {
    done_ = true;
    thread_.join();
  }

  interrupt_watcher(const interrupt_watcher&) = delete;
  interrupt_watcher& operator=(const interrupt_watcher&) = delete;

private:
  std::atomic<bool> done_{false};
  std::thread thread_;  // last: starts once done_ exists
};

} // namespace snakepit::cli
