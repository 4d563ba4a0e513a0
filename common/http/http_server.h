// HTTPS server: HTTP/1.1 over TLS with keep-alive, chunked streaming
// responses and graceful shutdown. Plain HTTP on the TLS port is answered
// with 400 and closed, as kube-apiserver does.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/http/http_message.h"

namespace kelpie::http {

struct TlsServerFiles {
  std::string certificate_file;  // PEM chain, leaf first
  std::string private_key_file;  // PEM
  // When set, clients may present certificates signed by this CA; those that
  // do are identified (PeerIdentity), and invalid ones fail the handshake.
  std::string client_ca_file;
};

struct HttpServerOptions {
  std::string bind_address = "0.0.0.0";
  uint16_t port = 0;  // 0 picks a free port (see HttpServer::port())
  TlsServerFiles tls;
  int io_threads = 2;
  size_t max_body_bytes = 3 * 1024 * 1024;
  size_t max_header_bytes = 64 * 1024;
  // Idle keep-alive connections are closed after this long.
  std::chrono::seconds idle_timeout{120};
  // A response write that makes no progress for this long closes the
  // connection. Long-lived streams (watches) are not bounded by it.
  std::chrono::seconds write_timeout{60};
};

class HttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options,
                                                           HttpHandler handler);
  virtual ~HttpServer() = default;

  virtual uint16_t port() const = 0;

  // Stops accepting, closes idle connections, aborts streams, lets in-flight
  // requests finish until `grace` ends, then closes everything. Idempotent.
  virtual void Shutdown(std::chrono::milliseconds grace) = 0;

  // Connections currently open (for metrics and tests).
  virtual size_t open_connections() const = 0;
};

}  // namespace kelpie::http
