// X.509 certificates and keys for the cluster PKI: a self-signed CA and the
// certificates it issues (serving, client). ECDSA P-256 keys.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie::tls {

struct KeyPairPem {
  std::string certificate_pem;
  std::string private_key_pem;
};

struct CertificateRequest {
  std::string common_name;
  std::vector<std::string> organizations;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  bool server_auth = false;
  bool client_auth = false;
  std::chrono::hours validity{24 * 365};
};

// A new self-signed CA certificate and its key.
absl::StatusOr<KeyPairPem> CreateCertificateAuthority(const std::string& common_name,
                                                      std::chrono::hours validity);

// A certificate for `request` signed by `ca`.
absl::StatusOr<KeyPairPem> IssueCertificate(const KeyPairPem& ca, const CertificateRequest& request);

// A node joining the cluster keeps its private key: it makes one, sends the
// public half, and gets back a certificate signed by the cluster CA.
absl::StatusOr<std::string> GeneratePrivateKeyPem();
absl::StatusOr<std::string> PublicKeyPemOf(const std::string& private_key_pem);
absl::StatusOr<std::string> IssueCertificateForPublicKey(const KeyPairPem& ca, const CertificateRequest& request,
                                                         const std::string& public_key_pem);

// What Kelpie needs to know of an existing certificate to decide whether to
// keep it.
struct CertificateInfo {
  std::string common_name;
  std::vector<std::string> organizations;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;  // canonical text form
  std::chrono::system_clock::time_point not_after;
  std::string issuer_common_name;
};

absl::StatusOr<CertificateInfo> ParseCertificate(const std::string& certificate_pem);

// True when `certificate_pem` was signed by `ca_certificate_pem`'s key.
bool IsSignedBy(const std::string& certificate_pem, const std::string& ca_certificate_pem);

// SHA-256 over the certificate's DER SubjectPublicKeyInfo, hex, as kubeadm's
// discovery-token-ca-cert-hash uses ("sha256:" not included).
absl::StatusOr<std::string> PublicKeySha256(const std::string& certificate_pem);

}  // namespace kelpie::tls
