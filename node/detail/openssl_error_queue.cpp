#include "snakepit/node/detail/openssl_error_queue.hpp"

#include <dlfcn.h>
#include <link.h>

#include <cstdint>
#include <cstring>

#include <openssl/err.h>
#include <openssl/ssl.h>

// See the header for why these exist. They must keep libssl's exact
// signatures and be exported: the dynamic linker binds libcaf_openssl's
// calls to the first definition it finds, ours.

namespace {

/// The address range of libcaf_openssl's code, found once.
struct caf_openssl_code {
  std::uintptr_t begin = 0;
  std::uintptr_t end = 0;

  caf_openssl_code() {
    dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* out) {
        if (info->dlpi_name == nullptr || std::strstr(info->dlpi_name, "libcaf_openssl") == nullptr)
          return 0;
        auto* self = static_cast<caf_openssl_code*>(out);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          auto& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0)
            continue;
          auto lo = info->dlpi_addr + ph.p_vaddr;
          auto hi = lo + ph.p_memsz;
          if (self->begin == 0 || lo < self->begin)
            self->begin = lo;
          if (hi > self->end)
            self->end = hi;
        }
        return 1;
      },
      this);
  }

  [[nodiscard]] bool contains(const void* address) const noexcept {
    auto a = reinterpret_cast<std::uintptr_t>(address);
    return a >= begin && a < end;
  }
};

bool from_caf(const void* return_address) {
  static const caf_openssl_code code;
  return code.contains(return_address);
}

template <class Fn>
Fn next_definition(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, name));
}

} // namespace

extern "C" {

__attribute__((visibility("default"))) int SSL_read(SSL* ssl, void* buf, int num) {
  static const auto real = next_definition<int (*)(SSL*, void*, int)>("SSL_read");
  if (from_caf(__builtin_return_address(0)))
    ERR_clear_error();
  return real(ssl, buf, num);
}

__attribute__((visibility("default"))) int SSL_write(SSL* ssl, const void* buf, int num) {
  static const auto real = next_definition<int (*)(SSL*, const void*, int)>("SSL_write");
  if (from_caf(__builtin_return_address(0)))
    ERR_clear_error();
  return real(ssl, buf, num);
}

__attribute__((visibility("default"))) int SSL_connect(SSL* ssl) {
  static const auto real = next_definition<int (*)(SSL*)>("SSL_connect");
  if (from_caf(__builtin_return_address(0)))
    ERR_clear_error();
  return real(ssl);
}

__attribute__((visibility("default"))) int SSL_accept(SSL* ssl) {
  static const auto real = next_definition<int (*)(SSL*)>("SSL_accept");
  if (from_caf(__builtin_return_address(0)))
    ERR_clear_error();
  return real(ssl);
}

} // extern "C"

namespace snakepit::detail {

bool openssl_error_queue_guarded() {
  return ::dlsym(RTLD_DEFAULT, "SSL_read") == reinterpret_cast<void*>(&SSL_read);
}

} // namespace snakepit::detail
