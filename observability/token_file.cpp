#include "snakepit/observability/token_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "snakepit/actors/detail/read_all.hpp"
#include "snakepit/actors/detail/trusted_files.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit {

caf::expected<std::string> read_token_file(const std::string& path, const std::string& key) {
  auto refuse = [&](const std::string& why) {
    return make_error(errc::bad_config, fmt::format("{}: cannot use {} as a token file: {}", key,
                                                    path, why));
  };
  if (auto why = detail::unsafe_path_reason(path); !why.empty())
    return refuse(why + "; keep it where only you (or root) can write");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return refuse(std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return refuse("not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return refuse(fmt::format("mode {:o} lets others read it; chmod 600 {}", st.st_mode & 0777,
                              path));
  }
  bool over = false;
  auto text = detail::read_all(fd, max_token_bytes, false, &over);
  ::close(fd);
  if (over)
    return refuse(fmt::format("longer than {} bytes", max_token_bytes));
  auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos)
    return refuse("it is empty");
  auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

} // namespace snakepit
