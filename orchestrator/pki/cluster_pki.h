// The cluster's certificates, created on the server's first start and reused
// afterwards: a CA, the API server's serving certificate and the admin's
// client certificate (group system:masters), the service-account signing
// key pair, plus the admin kubeconfig.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tls/certificates.h"
#include "orchestrator/pki/service_account_key.h"

namespace kelpie::pki {

struct ClusterPkiOptions {
  std::string directory;  // e.g. <data-dir>/pki, created with mode 0700
  // Names and addresses the serving certificate must cover besides the
  // defaults (localhost, loopback, host name and addresses, kubernetes.*).
  std::vector<std::string> extra_sans;
  std::string first_service_ip;  // the `kubernetes` Service's ClusterIP
  std::string cluster_domain = "cluster.local";
};

struct ClusterPki {
  std::string ca_certificate_file;
  std::string ca_key_file;
  std::string serving_certificate_file;
  std::string serving_key_file;
  std::string admin_certificate_file;
  std::string admin_key_file;
  // Signs and verifies service-account tokens (sa.key, sa.pub).
  std::string service_account_key_file;
  std::string service_account_public_key_file;
  tls::KeyPairPem ca;
  tls::KeyPairPem admin;
  ServiceAccountKeyPem service_account;
  bool created_service_account_key = false;
  bool created_ca = false;         // first start
  bool reissued_serving = false;   // SANs changed or expiry near
};

// Creates what is missing and reissues leaf certificates that no longer fit
// (missing SANs, expiring within 30 days, or signed by another CA). The CA
// itself is never replaced: everything already trusting it keeps working.
absl::StatusOr<ClusterPki> EnsureClusterPki(const ClusterPkiOptions& options);

// The SANs the serving certificate gets: localhost, 127.0.0.1, ::1, the
// host name, the host's non-loopback addresses, kubernetes,
// kubernetes.default, kubernetes.default.svc, kubernetes.default.svc.<domain>,
// the first service IP and `extra`.
void DefaultServingSans(const ClusterPkiOptions& options, std::vector<std::string>* dns,
                        std::vector<std::string>* ips);

}  // namespace kelpie::pki
