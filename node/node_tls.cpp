#include "snakepit/node/node_tls.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "snakepit/actors/runtime_paths.hpp"
#include "snakepit/actors/detail/log.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/node/detail/openssl_error_queue.hpp"
#include "snakepit/observability/token_file.hpp"

namespace snakepit {

namespace {

/// Longest PEM file a node reads (a certificate chain or a CA bundle).
constexpr std::size_t max_pem_bytes = 1 << 20;

caf::error bad(std::string what) {
  return make_error(errc::bad_config, std::move(what));
}

/// OpenSSL's reason for the last failure, for messages.
std::string openssl_reason() {
  auto code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0)
    return "no PEM data";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

using bio_ptr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using x509_ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

bio_ptr bio_of(const std::string& text) {
  return {BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), &BIO_free};
}

x509_ptr first_certificate(const std::string& text) {
  auto bio = bio_of(text);
  return {bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr, &X509_free};
}

/// No passphrase callback: an encrypted key fails here instead of making
/// OpenSSL prompt on the terminal from a network thread.
int no_passphrase(char*, int, int, void*) {
  return -1;
}

/// Writes `text` to a new file `name` of `dir` (mode 0600); the path.
caf::expected<std::string> write_private(const std::string& dir, const char* name,
                                         const std::string& text) {
  auto path = dir + "/" + name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return make_error(errc::startup_failed,
                      fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  std::size_t done = 0;
  while (done < text.size()) {
    auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      auto why = std::strerror(errno);
      ::close(fd);
      return make_error(errc::startup_failed, fmt::format("cannot write {}: {}", path, why));
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return path;
}

} // namespace

caf::error use_distribution(caf::actor_system_config& cfg, const node_tls& tls) {
  cfg.load<caf::io::middleman>();
  if (!tls.enabled())
    return {};
  if (tls.cert.empty() || tls.key.empty() || tls.ca.empty())
    return bad("[node] TLS needs tls_cert, tls_key and tls_ca together: nodes authenticate "
               "each other (each presents its certificate, each checks the peer's against "
               "the CA)");
  auto cert_text = read_trusted_file(tls.cert, "[node] tls_cert", max_pem_bytes);
  if (!cert_text)
    return std::move(cert_text.error());
  auto key_text = read_secret_file(tls.key, "[node] tls_key", max_pem_bytes);
  if (!key_text)
    return std::move(key_text.error());
  auto ca_text = read_trusted_file(tls.ca, "[node] tls_ca", max_pem_bytes);
  if (!ca_text)
    return std::move(ca_text.error());
  // CAF loads these for every connection and throws from its network thread
  // when one is unusable: find every such fault here, with a message.
  ERR_clear_error();
  auto cert = first_certificate(*cert_text);
  if (!cert)
    return bad(fmt::format("[node] tls_cert: {} holds no PEM certificate ({})", tls.cert,
                           openssl_reason()));
  pkey_ptr key{nullptr, &EVP_PKEY_free};
  if (auto bio = bio_of(*key_text))
    key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (!key)
    return bad(fmt::format("[node] tls_key: {} holds no unencrypted PEM private key ({}); "
                           "decrypt it with `openssl pkey -in KEY -out KEY.plain`",
                           tls.key, openssl_reason()));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return bad(fmt::format("[node] tls_key: {} is not the key of the certificate in {}",
                           tls.key, tls.cert));
  }
  // A node serves and connects with the same certificate.
  if (X509_check_purpose(cert.get(), X509_PURPOSE_SSL_SERVER, 0) != 1
      || X509_check_purpose(cert.get(), X509_PURPOSE_SSL_CLIENT, 0) != 1)
    return bad(fmt::format("[node] tls_cert: {} must allow both TLS server and client use "
                           "(a node serves and connects with it): issue it with "
                           "extendedKeyUsage = serverAuth, clientAuth",
                           tls.cert));
  if (!first_certificate(*ca_text))
    return bad(fmt::format("[node] tls_ca: {} holds no PEM certificate ({})", tls.ca,
                           openssl_reason()));
  // Our own copies: nobody can swap a file CAF reads later.
  if (auto err = ensure_runtime_dir())
    return err;
  auto dir = make_private_dir("node-tls");
  if (dir.empty())
    return make_error(errc::startup_failed,
                      fmt::format("cannot make a private directory under {}: {}",
                                  runtime_dir(), std::strerror(errno)));
  auto cert_path = write_private(dir, "cert.pem", *cert_text);
  auto key_path = write_private(dir, "key.pem", *key_text);
  auto ca_path = write_private(dir, "ca.pem", *ca_text);
  for (auto* written : {&cert_path, &key_path, &ca_path})
    if (!*written)
      return std::move(written->error());
  cfg.openssl_certificate = *cert_path;
  cfg.openssl_key = *key_path;
  cfg.openssl_cafile = *ca_path;
  if (!detail::openssl_error_queue_guarded())
    detail::log_warning("node", "libssl was linked before libsnakepit, so snakepit cannot "
                        "guard CAF's TLS connections: a failed handshake (a wrong "
                        "certificate, a port scan) may drop this node's other connections; "
                        "link libsnakepit before libssl");
  cfg.load<caf::openssl::manager>();
  return {};
}

bool uses_tls(const caf::actor_system& sys) {
  return sys.has_openssl_manager();
}

} // namespace snakepit
