// OpenSSL context setup shared by the HTTPS server and client.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "common/http/http_message.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace kelpie::http {

struct TlsServerFiles;

// TLS 1.2+, the serving certificate and key, optional client-certificate
// verification against a CA, ALPN "http/1.1".
absl::Status ConfigureServerTls(SSL_CTX* ctx, const TlsServerFiles& files);

// Certificate material for a client, as PEM text (kubeconfig-style data
// fields) or file paths; PEM wins when both are set.
struct TlsClientConfig {
  std::string ca_pem;
  std::string ca_file;
  std::string certificate_pem;
  std::string certificate_file;
  std::string private_key_pem;
  std::string private_key_file;
  // Name checked against the server certificate; defaults to the host.
  std::string server_name;
  // No verification of the server at all. Only for fetching a CA that is
  // checked against a pinned hash before anything trusts it (joining).
  bool skip_server_verification = false;
};

absl::Status ConfigureClientTls(SSL_CTX* ctx, const TlsClientConfig& config);

// The verified client certificate's subject (CN as user, O as groups).
PeerIdentity PeerIdentityFromSsl(SSL* ssl);

}  // namespace kelpie::http
