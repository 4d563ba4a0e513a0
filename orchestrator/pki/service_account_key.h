// The key pair that signs service-account tokens: RSA 2048, kept beside the
// cluster CA as sa.key (PKCS#8 PEM, 0600) and sa.pub (SubjectPublicKeyInfo
// PEM), as kubeadm lays them out.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace kelpie::pki {

struct ServiceAccountKeyPem {
  std::string private_key_pem;
  std::string public_key_pem;
};

// A new RSA 2048 key pair.
absl::StatusOr<ServiceAccountKeyPem> CreateServiceAccountKey();

// The public half of `private_key_pem` as PEM.
absl::StatusOr<std::string> PublicKeyPem(const std::string& private_key_pem);

// Loads <dir>/sa.key and <dir>/sa.pub, creating both when neither exists and
// rewriting sa.pub from sa.key when only the key is there. sa.pub without
// sa.key is an error: a new key would invalidate every token issued so far,
// which must be the operator's decision.
absl::StatusOr<ServiceAccountKeyPem> EnsureServiceAccountKey(const std::string& directory,
                                                             bool* created);

}  // namespace kelpie::pki
