#include "orchestrator/apiserver/api_server_config.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "orchestrator/apiserver/audit_log.h"
#include "orchestrator/apiserver/auth_api.h"
#include "orchestrator/apiserver/authenticator.h"
#include "orchestrator/apiserver/bootstrap_policy.h"
#include "orchestrator/apiserver/node_authorizer.h"
#include "orchestrator/apiserver/rbac_authorizer.h"
#include "orchestrator/apiserver/service_account_token.h"
#include "orchestrator/apiserver/token_file.h"

namespace kelpie::apiserver {

void AddApiServerFlags(CLI::App& app, ApiServerConfig& c) {
  app.add_option("--token-auth-file", c.token_auth_file,
                 "CSV file of static bearer tokens: token,user,uid,\"group1,group2\" per line");
  app.add_option("--service-account-issuer", c.service_account_issuer,
                 "Issuer (iss) of the service-account tokens this server signs and accepts")
      ->capture_default_str();
  app.add_option("--api-audiences", c.api_audiences,
                 "Audiences a bearer token must be meant for to reach the API (default: the issuer); also "
                 "the default audiences of issued tokens")
      ->delimiter(',');
  app.add_option("--audit-log-path", c.audit_log_path,
                 "Write an audit event (audit.k8s.io/v1, level Metadata) per mutating request to this file, "
                 "one JSON object per line");
  app.add_option("--audit-log-maxsize", c.audit_log_maxsize_mb,
                 "Rotate the audit log before it grows past this many megabytes (0: never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--audit-log-maxbackup", c.audit_log_maxbackup, "Rotated audit log files kept (0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--audit-log-maxage", c.audit_log_maxage_days,
                 "Days a rotated audit log file is kept (0: no age limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--audit-log-batch-buffer-size", c.audit_log_batch_buffer_size,
                 "Audit events that may wait for the disk; beyond this they are dropped and counted in "
                 "apiserver_audit_error_total")
      ->capture_default_str();
  app.add_option("--request-timeout", c.request_timeout,
                 "How long a request (other than watches, logs, exec) may take before it is answered with "
                 "504 Timeout")
      ->capture_default_str();
  app.add_option("--max-requests-inflight", c.max_requests_inflight,
                 "Read-only requests served at once before more get 429 (0: no limit)")
      ->capture_default_str();
  app.add_option("--max-mutating-requests-inflight", c.max_mutating_requests_inflight,
                 "Mutating requests served at once before more get 429 (0: no limit)")
      ->capture_default_str();
}

absl::Status ApplyApiServerLimits(const ApiServerConfig& c, ApiServerOptions* o) {
  auto timeout = ParseDuration(c.request_timeout);
  if (!timeout.ok()) return absl::InvalidArgumentError(absl::StrCat("--request-timeout: ", timeout.status().message()));
  if (c.max_requests_inflight < 0) return absl::InvalidArgumentError("--max-requests-inflight: must not be negative");
  if (c.max_mutating_requests_inflight < 0) {
    return absl::InvalidArgumentError("--max-mutating-requests-inflight: must not be negative");
  }
  o->request_timeout = *timeout;
  o->max_requests_inflight = c.max_requests_inflight;
  o->max_mutating_requests_inflight = c.max_mutating_requests_inflight;
  return absl::OkStatus();
}

absl::StatusOr<ApiServerSecurity> BuildApiServerSecurity(const ApiServerConfig& c, store::Store& store,
                                                         const std::string& private_key_pem,
                                                         const std::string& public_key_pem,
                                                         prometheus::Registry& registry) {
  if (c.audit_log_batch_buffer_size < 1) {
    return absl::InvalidArgumentError("--audit-log-batch-buffer-size: must be at least 1");
  }
  if (c.service_account_issuer.empty()) return absl::InvalidArgumentError("--service-account-issuer: must not be empty");
  ApiServerSecurity s;
  std::vector<std::string> audiences = c.api_audiences;
  if (audiences.empty()) audiences.push_back(c.service_account_issuer);

  auto authenticator = std::make_shared<RequestAuthenticator>(audiences);
  if (!c.token_auth_file.empty()) {
    auto tokens = StaticTokenAuthenticator::FromFile(c.token_auth_file);
    if (!tokens.ok()) return absl::InvalidArgumentError(absl::StrCat("--token-auth-file: ", tokens.status().message()));
    spdlog::info("static tokens: {} users from {}", (*tokens)->size(), c.token_auth_file);
    authenticator->AddTokenAuthenticator(std::shared_ptr<TokenAuthenticator>(std::move(*tokens)));
  }
  auto signer = ServiceAccountTokenSigner::FromPem(private_key_pem);
  if (!signer.ok()) return absl::InvalidArgumentError(absl::StrCat("service-account key: ", signer.status().message()));
  auto verifier = ServiceAccountTokenVerifier::FromPem(public_key_pem);
  if (!verifier.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("service-account public key: ", verifier.status().message()));
  }
  std::shared_ptr<const ServiceAccountTokenVerifier> shared_verifier(std::move(*verifier));
  authenticator->AddTokenAuthenticator(std::make_shared<ServiceAccountTokenAuthenticator>(
      shared_verifier, c.service_account_issuer, std::shared_ptr<ServiceAccountLookup>(StoreServiceAccountLookup(store))));

  if (absl::Status st = EnsureBootstrapPolicy(store); !st.ok()) {
    return absl::Status(st.code(), absl::StrCat("bootstrap RBAC policy: ", st.message()));
  }
  auto rbac = RbacAuthorizer::Start(store);
  if (!rbac.ok()) return absl::Status(rbac.status().code(), absl::StrCat("RBAC: ", rbac.status().message()));

  std::shared_ptr<ServiceAccountTokenSigner> shared_signer(std::move(*signer));
  s.authenticator = authenticator;
  // Nodes' writes are confined to their own objects (node_authorizer.h).
  s.authorizer = std::make_shared<NodeAuthorizer>(
      std::shared_ptr<Authorizer>(std::move(*rbac)),
      [&store](const std::string& ns, const std::string& name) -> std::optional<std::string> {
        auto kv = store.Get(absl::StrCat("/registry/pods/", ns, "/", name));
        if (!kv.ok()) return std::nullopt;
        auto pod = nlohmann::json::parse(kv->value_view(), nullptr, /*allow_exceptions=*/false);
        if (!pod.is_object() || !pod.contains("spec") || !pod["spec"].is_object()) return std::string();
        return pod["spec"].value("nodeName", "");
      });
  s.auth_api = std::make_shared<AuthApi>(AuthApiOptions{c.service_account_issuer, audiences}, store, shared_signer.get(),
                                         s.authenticator.get(), s.authorizer.get());
  s.keep_alive.push_back(shared_signer);
  s.keep_alive.push_back(std::const_pointer_cast<ServiceAccountTokenVerifier>(shared_verifier));
  if (!c.audit_log_path.empty()) {
    AuditLogOptions ao;
    ao.path = c.audit_log_path;
    ao.max_queued_events = static_cast<size_t>(c.audit_log_batch_buffer_size);
    ao.max_bytes = static_cast<uint64_t>(c.audit_log_maxsize_mb) * 1024 * 1024;
    ao.max_backups = c.audit_log_maxbackup;
    ao.max_age_days = c.audit_log_maxage_days;
    auto log = AuditLog::Open(ao, &registry);
    if (!log.ok()) return absl::InvalidArgumentError(absl::StrCat("--audit-log-path: ", log.status().message()));
    s.audit_log = std::shared_ptr<AuditLog>(std::move(*log));
  }
  return s;
}

}  // namespace kelpie::apiserver
