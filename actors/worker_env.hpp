#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace snakepit {

/// The environment of one worker from its pool's `env`: in each value,
/// `{index}` becomes the worker's slot (0 to count - 1; a replacement takes
/// the slot of the worker it replaces), `{count}` the pool's size when it
/// started, and `{index % N}` the slot modulo N (e.g. `CUDA_VISIBLE_DEVICES =
/// "{index % 2}"` on two GPUs). Any other text, braces included, stays as it
/// is.
std::vector<std::pair<std::string, std::string>>
expand_worker_env(const std::vector<std::pair<std::string, std::string>>& env,
                  std::uint32_t index, std::uint32_t count);

/// The environment every Python process of a pool starts with, before the
/// pool's `env`: the bridge package on PYTHONPATH, the run marker, unbuffered
/// output, and native thread pools of one thread (one per request slot, so N
/// workers do not each start a BLAS pool as large as the machine; a fork
/// server must not start one at all). Users may override these in `env`.
std::vector<std::pair<std::string, std::string>> base_python_env();

/// The entries of a pool's `env` that are the same for every worker (no
/// placeholder): what its fork server starts with.
std::vector<std::pair<std::string, std::string>>
shared_worker_env(const std::vector<std::pair<std::string, std::string>>& env);

/// The placeholder in `text` that looks meant but is not understood
/// (`{index % 0}`, `{index % x}`, `{idx}`...), for a clear config error;
/// empty when there is none.
std::string bad_worker_env_placeholder(const std::string& text);

/// Which CPUs worker `index` runs on: `spread` pins worker i to the i-th CPU
/// this process may use (round robin); `sets` gives each worker the set at
/// i modulo their number. Empty: no pinning.
struct cpu_affinity_spec {
  bool spread = false;
  std::vector<std::vector<int>> sets;

  [[nodiscard]] bool enabled() const noexcept {
    return spread || !sets.empty();
  }

  [[nodiscard]] std::vector<int> cpus_for(std::uint32_t index) const;
};

} // namespace snakepit
