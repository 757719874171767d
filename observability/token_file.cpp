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

namespace {

/// Opens and reads `path` if it is a regular file in a safe place; with
/// `secret`, only when nobody else may read it.
caf::expected<std::string> read_checked(const std::string& path, const std::string& key,
                                        const char* what, bool secret, std::size_t max_bytes) {
  auto refuse = [&](const std::string& why) {
    return make_error(errc::bad_config, fmt::format("{}: cannot use {} as a {}: {}", key, path,
                                                    what, why));
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
  if (secret && (st.st_mode & 077) != 0) {
    ::close(fd);
    return refuse(fmt::format("mode {:o} lets others read it; chmod 600 {}", st.st_mode & 0777,
                              path));
  }
  bool over = false;
  auto text = detail::read_all(fd, max_bytes, false, &over);
  ::close(fd);
  if (over)
    return refuse(fmt::format("longer than {} bytes", max_bytes));
  return text;
}

} // namespace

caf::expected<std::string> read_token_file(const std::string& path, const std::string& key) {
  auto text = read_checked(path, key, "token file", true, max_token_bytes);
  if (!text)
    return text;
  auto first = text->find_first_not_of(" \t\r\n");
  if (first == std::string::npos)
    return make_error(errc::bad_config,
                      fmt::format("{}: cannot use {} as a token file: it is empty", key, path));
  auto last = text->find_last_not_of(" \t\r\n");
  return text->substr(first, last - first + 1);
}

caf::expected<std::string> read_secret_file(const std::string& path, const std::string& key,
                                            std::size_t max_bytes) {
  return read_checked(path, key, "private key", true, max_bytes);
}

caf::expected<std::string> read_trusted_file(const std::string& path, const std::string& key,
                                             std::size_t max_bytes) {
  return read_checked(path, key, "certificate file", false, max_bytes);
}

} // namespace snakepit
