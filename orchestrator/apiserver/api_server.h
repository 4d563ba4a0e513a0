// The Kubernetes API endpoint: HTTPS only, client certificates from the
// cluster CA. Serves health, version, discovery and the resource API.
//
// Authentication: a client certificate signed by the cluster CA (CN is the
// user, O the groups); requests to the API without one get 401.
// Authorization: RBAC is not built yet, so only members of system:masters
// may use the resource API; everyone else gets 403.
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

namespace kelpie::apiserver {

struct ApiServerOptions {
  std::string bind_address = "0.0.0.0";
  uint16_t secure_port = 6443;
  http::TlsServerFiles tls;  // serving pair + client CA
  int io_threads = 2;
};

// A named readiness check (e.g. "store"); /readyz fails while any fails.
using HealthCheck = std::function<absl::Status()>;

class ResourceApi;

class ApiServer {
 public:
  // `resources` (optional) serves discovery and the resource API; it must
  // outlive the server.
  explicit ApiServer(ApiServerOptions options, ResourceApi* resources = nullptr);
  ~ApiServer();

  void AddReadinessCheck(std::string name, HealthCheck check);

  absl::Status Start();
  uint16_t port() const;

  // Fails /readyz first (so load balancers drain), then stops serving after
  // letting in-flight requests finish within `grace`.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  void Handle(http::HttpRequest&& request, std::shared_ptr<http::HttpResponder> responder);
  http::HttpResponse HealthResponse(const http::HttpRequest& request, bool readiness);

  ApiServerOptions options_;
  ResourceApi* resources_;
  std::unique_ptr<http::HttpServer> server_;
  std::mutex checks_mu_;
  std::vector<std::pair<std::string, HealthCheck>> readiness_checks_;
  std::atomic<bool> shutting_down_{false};
};

// A Kubernetes Status object (kind: Status) as JSON.
std::string StatusJson(int code, const std::string& reason, const std::string& message);

}  // namespace kelpie::apiserver
