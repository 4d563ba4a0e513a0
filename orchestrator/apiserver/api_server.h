// The Kubernetes API endpoint: HTTPS only. Serves health, version,
// discovery, /metrics, the resource API and the authentication and
// authorization APIs.
//
// Every request passes, in kube-apiserver's order:
//   authentication  client certificate from the cluster CA, then bearer
//                   tokens (token file, service-account JWTs); bad
//                   credentials are 401, no credentials reach only
//                   /healthz, /livez, /readyz and /version
//   in-flight limit --max-requests-inflight / --max-mutating-requests-
//                   inflight, 429 with Retry-After: 1 beyond them (watches
//                   and other long-running requests are not counted;
//                   system:masters is never refused)
//   impersonation   Impersonate-User/-Group/-Uid/-Extra-* headers, each
//                   authorized with the `impersonate` verb
//   authorization   RBAC (or, without an authorizer, system:masters only);
//                   403 with kube-apiserver's message
//   request timeout 504 for non-long-running requests past
//                   --request-timeout (or a shorter ?timeout=)
// and is counted in the apiserver_* metrics and, when mutating, written to
// the audit log.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/http/http_server.h"

namespace prometheus {
class Collectable;
class Registry;
}

namespace kelpie::apiserver {

class AuditLog;
class AuthApi;
class JoinApi;
class Authorizer;
class RequestAuthenticator;
class ResourceApi;
class PodStreamProxy;

struct ApiServerOptions {
  std::string bind_address = "0.0.0.0";
  uint16_t secure_port = 6443;
  http::TlsServerFiles tls;  // serving pair + client CA
  int io_threads = 2;
  // 0 disables a limit.
  int max_requests_inflight = 400;
  int max_mutating_requests_inflight = 200;
  std::chrono::milliseconds request_timeout{std::chrono::seconds(60)};
};

// Who may do what, and the record of it. Every member is optional: without
// an authenticator only client certificates count, without an authorizer
// only system:masters is allowed, without AuthApi the token and review
// endpoints are absent, without an audit log nothing is recorded.
struct ApiServerSecurity {
  std::shared_ptr<RequestAuthenticator> authenticator;
  std::shared_ptr<Authorizer> authorizer;
  std::shared_ptr<AuthApi> auth_api;
  std::shared_ptr<AuditLog> audit_log;
  // /cacerts and node credentials for joining agents (absent without it).
  std::shared_ptr<JoinApi> join_api;
  // Whatever else the pieces above need kept alive (signer, verifier).
  std::vector<std::shared_ptr<void>> keep_alive;
};

// A named readiness check (e.g. "store"); /readyz fails while any fails.
using HealthCheck = std::function<absl::Status()>;

class ApiServer {
 public:
  // `resources` (optional) serves discovery and the resource API; it must
  // outlive the server. `metrics` receives the API server's own metrics
  // and is served at /metrics (a new registry when null).
  ApiServer(ApiServerOptions options, ResourceApi* resources = nullptr, ApiServerSecurity security = {},
            std::shared_ptr<prometheus::Registry> metrics = nullptr);
  ~ApiServer();

  void AddReadinessCheck(std::string name, HealthCheck check);
  // /metrics serves this registry (or any Collectable) too: other
  // components' metrics.
  void AddMetricsRegistry(std::shared_ptr<prometheus::Collectable> registry);
  // Serves pods/log, exec, attach and portforward by proxying to kubelets
  // (without it those subresources are not found). Set before Start.
  void SetPodStreamProxy(std::shared_ptr<PodStreamProxy> proxy);
  // The registry the API server's own metrics are in.
  std::shared_ptr<prometheus::Registry> metrics_registry() const;

  absl::Status Start();
  uint16_t port() const;

  // Fails /readyz first (so load balancers drain), then stops serving after
  // letting in-flight requests finish within `grace`, and releases the
  // security components (and their store watches): call it before the
  // store goes away.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  struct State;
  class ObservedResponder;

  void Handle(http::HttpRequest&& request, std::shared_ptr<http::HttpResponder> responder);
  http::HttpResponse HealthResponse(const http::HttpRequest& request, bool readiness);
  http::HttpResponse MetricsResponse();

  ApiServerOptions options_;
  ResourceApi* resources_;
  std::shared_ptr<PodStreamProxy> pod_streams_;
  ApiServerSecurity security_;
  std::shared_ptr<State> state_;  // shared with requests still answering
  std::unique_ptr<http::HttpServer> server_;
  std::mutex checks_mu_;
  std::vector<std::pair<std::string, HealthCheck>> readiness_checks_;
  std::atomic<bool> shutting_down_{false};
};

// A Kubernetes Status object (kind: Status) as JSON.
std::string StatusJson(int code, const std::string& reason, const std::string& message);

// Parses a Go duration ("60s", "1m30s", "500ms", "2h"); kube-apiserver's
// duration flags and the ?timeout= parameter use this form. A bare number
// is seconds.
absl::StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text);

}  // namespace kelpie::apiserver
