#include "snakepit/actors/worker_env.hpp"

#include "snakepit/actors/run_registry.hpp"
#include "snakepit/actors/runtime_paths.hpp"

#include <sched.h>

#include <cctype>
#include <cstdlib>
#include <string_view>

namespace snakepit {

namespace {

/// `{index}`, `{count}`, `{index % N}` at `text[pos]` ('{'): its value and
/// length; length 0 when it is none of them.
std::pair<std::string, std::size_t> placeholder_at(std::string_view text, std::size_t pos,
                                                   std::uint32_t index, std::uint32_t count) {
  auto end = text.find('}', pos);
  if (end == std::string_view::npos)
    return {{}, 0};
  auto inner = text.substr(pos + 1, end - pos - 1);
  std::string compact;
  for (char c : inner)
    if (c != ' ')
      compact += c;
  auto length = end - pos + 1;
  if (compact == "index")
    return {std::to_string(index), length};
  if (compact == "count")
    return {std::to_string(count), length};
  if (compact.rfind("index%", 0) == 0 && compact.size() > 6 && compact.size() <= 15) {
    std::uint64_t n = 0;
    for (std::size_t i = 6; i < compact.size(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(compact[i])))
        return {{}, 0};
      n = n * 10 + static_cast<std::uint64_t>(compact[i] - '0');
    }
    if (n == 0)
      return {{}, 0};
    return {std::to_string(index % n), length};
  }
  return {{}, 0};
}

} // namespace

std::vector<std::pair<std::string, std::string>>
expand_worker_env(const std::vector<std::pair<std::string, std::string>>& env,
                  std::uint32_t index, std::uint32_t count) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(env.size());
  for (auto& [key, text] : env) {
    std::string value;
    for (std::size_t pos = 0; pos < text.size();) {
      if (text[pos] == '{') {
        auto [expanded, length] = placeholder_at(text, pos, index, count);
        if (length > 0) {
          value += expanded;
          pos += length;
          continue;
        }
      }
      value += text[pos++];
    }
    out.emplace_back(key, std::move(value));
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> base_python_env() {
  std::string pythonpath = python_package_dir();
  if (auto* existing = std::getenv("PYTHONPATH"); existing && *existing)
    pythonpath += std::string{":"} + existing;
  std::string threads = "1";
  return {{"PYTHONPATH", pythonpath},
          {run_registry::run_id_env, run_registry::this_run_id()},
          {"PYTHONUNBUFFERED", "1"},
          {"OMP_NUM_THREADS", threads},
          {"OPENBLAS_NUM_THREADS", threads},
          {"MKL_NUM_THREADS", threads},
          {"NUMEXPR_NUM_THREADS", threads}};
}

std::vector<std::pair<std::string, std::string>>
shared_worker_env(const std::vector<std::pair<std::string, std::string>>& env) {
  // Two different slots expand a placeholder differently; a fixed value never.
  auto first = expand_worker_env(env, 0, 2);
  auto second = expand_worker_env(env, 1, 2);
  std::vector<std::pair<std::string, std::string>> out;
  for (std::size_t i = 0; i < env.size(); ++i)
    if (first[i].second == env[i].second && second[i].second == env[i].second)
      out.push_back(env[i]);
  return out;
}

std::string bad_worker_env_placeholder(const std::string& text) {
  for (auto pos = text.find('{'); pos != std::string::npos; pos = text.find('{', pos + 1)) {
    auto end = text.find('}', pos);
    if (end == std::string::npos)
      break;
    auto inner = text.substr(pos + 1, end - pos - 1);
    // Only what starts like ours: other braces (JSON, shell) are the user's.
    auto first = inner.find_first_not_of(' ');
    if (first == std::string::npos)
      continue;
    auto word = inner.substr(first);
    bool ours = word.rfind("index", 0) == 0 || word.rfind("count", 0) == 0
                || word.rfind("idx", 0) == 0;
    if (ours && placeholder_at(text, pos, 0, 1).second == 0)
      return text.substr(pos, end - pos + 1);
  }
  return {};
}

std::vector<int> cpu_affinity_spec::cpus_for(std::uint32_t index) const {
  if (!sets.empty())
    return sets[index % sets.size()];
  if (!spread)
    return {};
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> allowed;
  if (::sched_getaffinity(0, sizeof(set), &set) == 0)
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &set))
        allowed.push_back(cpu);
  if (allowed.empty())
    return {};
  return {allowed[index % allowed.size()]};
}

} // namespace snakepit
