// `kelpie server`'s API-server flags (named as kube-apiserver's) and the
// wiring of authentication, authorization, the token endpoints and the
// audit log from them, so the command only forwards flags.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "orchestrator/apiserver/api_server.h"
#include "orchestrator/store/store.h"

namespace CLI {
class App;
}

namespace kelpie::apiserver {

struct ApiServerConfig {
  std::string token_auth_file;
  std::string service_account_issuer = "https://kubernetes.default.svc.cluster.local";
  // Default: the issuer.
  std::vector<std::string> api_audiences;
  std::string audit_log_path;
  int audit_log_batch_buffer_size = 10000;
  int audit_log_maxsize_mb = 0;
  int audit_log_maxbackup = 0;
  int audit_log_maxage_days = 0;
  std::string request_timeout = "60s";
  int max_requests_inflight = 400;
  int max_mutating_requests_inflight = 200;
};

// Registers --token-auth-file, --service-account-issuer, --api-audiences,
// --audit-log-path, --audit-log-batch-buffer-size, --request-timeout,
// --max-requests-inflight and --max-mutating-requests-inflight.
void AddApiServerFlags(CLI::App& app, ApiServerConfig& config);

// Copies the limits into `options`; errors name the flag at fault.
absl::Status ApplyApiServerLimits(const ApiServerConfig& config, ApiServerOptions* options);

// Creates the bootstrap RBAC policy where missing, starts the RBAC
// authorizer on `store`, loads the token file, and sets up service-account
// tokens with the given key pair (sa.key / sa.pub PEM) and the audit log.
// `registry` receives the audit metrics. `store` must outlive the result.
absl::StatusOr<ApiServerSecurity> BuildApiServerSecurity(const ApiServerConfig& config, store::Store& store,
                                                         const std::string& service_account_private_key_pem,
                                                         const std::string& service_account_public_key_pem,
                                                         prometheus::Registry& registry);

}  // namespace kelpie::apiserver
