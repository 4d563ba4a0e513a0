// The join token an agent needs to become a node of the cluster, in k3s's
// form: K10<ca hash>::<secret>. The CA hash (SHA-256 of the cluster CA's
// SubjectPublicKeyInfo, as kubeadm's discovery-token-ca-cert-hash) lets
// the agent trust the server it has never seen; the secret authenticates
// the agent's request for node credentials.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace kelpie::pki {

struct JoinToken {
  std::string ca_hash;  // 64 lower-case hex digits
  std::string secret;   // printable, no whitespace, at least 16 characters

  std::string ToString() const;  // K10<ca_hash>::<secret>
};

// Parses a full token. Errors say what is wrong without echoing the secret.
absl::StatusOr<JoinToken> ParseJoinToken(const std::string& text);

// The server's token: read from `path` when it exists (the secret is kept
// across restarts, the hash follows the CA), created with a random secret
// otherwise (mode 0600). `fixed_secret` (the server's --token) replaces the
// secret; it may be a bare secret or a whole K10 token.
absl::StatusOr<JoinToken> EnsureJoinToken(const std::string& path, const std::string& ca_certificate_pem,
                                          const std::string& fixed_secret = "");

// Constant-time comparison of secrets.
bool SecretsEqual(const std::string& a, const std::string& b);

}  // namespace kelpie::pki
