#pragma once

namespace snakepit::detail {

/// True when calls of CAF's OpenSSL module to SSL_read, SSL_write,
/// SSL_connect and SSL_accept go through snakepit's wrappers, which empty
/// the thread's OpenSSL error queue first, as OpenSSL requires.
///
/// Why: CAF 0.17 leaves a failed handshake's errors in the queue of its
/// network thread (it reads them only to log, and Debian builds it without
/// logging). OpenSSL's SSL_get_error looks at that queue first, so the next
/// read of *every other* TLS connection of the node failed and CAF dropped
/// it: one stranger with a wrong certificate, or a port scanner, cut a node
/// off from all its peers. The wrappers interpose libssl's functions (the
/// dynamic linker finds libsnakepit first) and act only on calls made from
/// libcaf_openssl.
bool openssl_error_queue_guarded();

} // namespace snakepit::detail
