// The node's observability endpoint over HTTPS: GET /metrics (every
// registry and scrape-time collector given, Prometheus text format) and
// GET /v1/flows (the flow observer: JSON lines, filters as URL parameters,
// follow=1 streams new flows until the client leaves). The serving
// certificate is signed by a CA of its own kept in `certificate_dir`
// (ca.crt is what Prometheus and `kelpie observe --ca-file` trust). It
// authenticates nobody: bind it to loopback or a trusted network.
#pragma once

#include <prometheus/collectable.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/http/http_server.h"
#include "exporters/flows/flow_observer.h"

namespace kelpie::observability {

struct ObservabilityEndpointOptions {
  std::string bind_address = "127.0.0.1";
  uint16_t port = 0;  // 0 picks a free port
  std::string certificate_dir;
  std::vector<std::string> extra_sans;  // host names or IPs for the certificate
};

// ca.crt, tls.crt and tls.key in `dir`, created when absent.
struct EndpointCertificates {
  std::string ca_file, certificate_file, key_file;
};
absl::StatusOr<EndpointCertificates> EnsureEndpointCertificates(const std::string& dir,
                                                                const std::vector<std::string>& sans);

class ObservabilityEndpoint {
 public:
  // `observer` may be null (no /v1/flows); it must outlive the endpoint.
  static absl::StatusOr<std::unique_ptr<ObservabilityEndpoint>> Start(
      const ObservabilityEndpointOptions& options, std::vector<std::shared_ptr<prometheus::Collectable>> metrics,
      flows::FlowObserver* observer);
  ~ObservabilityEndpoint();

  uint16_t port() const { return server_->port(); }
  const std::string& ca_file() const { return certificates_.ca_file; }
  void Shutdown();

 private:
  ObservabilityEndpoint() = default;
  void Handle(http::HttpRequest&& request, std::shared_ptr<http::HttpResponder> responder);
  std::string Metrics() const;

  EndpointCertificates certificates_;
  std::vector<std::shared_ptr<prometheus::Collectable>> metrics_;
  flows::FlowObserver* observer_ = nullptr;
  std::unique_ptr<http::HttpServer> server_;
};

}  // namespace kelpie::observability
