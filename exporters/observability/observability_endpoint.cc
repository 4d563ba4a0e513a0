#include "exporters/observability/observability_endpoint.h"

#include <prometheus/text_serializer.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/tls/certificates.h"
#include "exporters/flows/flow_format.h"
#include "exporters/flows/flow_query_params.h"

namespace kelpie::observability {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

http::HttpResponse Text(int status, std::string body) {
  http::HttpResponse r;
  r.status = status;
  r.SetHeader("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(body);
  return r;
}

}  // namespace

absl::StatusOr<EndpointCertificates> EnsureEndpointCertificates(const std::string& dir,
                                                                const std::vector<std::string>& sans) {
  EndpointCertificates c{dir + "/ca.crt", dir + "/tls.crt", dir + "/tls.key"};
  if (PathExists(c.ca_file) && PathExists(c.certificate_file) && PathExists(c.key_file)) return c;
  if (absl::Status s = MakeDirectories(dir, 0700); !s.ok()) return s;
  auto ca = tls::CreateCertificateAuthority("kelpie-observability-ca", std::chrono::hours(24 * 3650));
  if (!ca.ok()) return ca.status();
  tls::CertificateRequest request;
  request.common_name = "kelpie-observability";
  request.server_auth = true;
  request.dns_names = {"localhost"};
  request.ip_addresses = {"127.0.0.1"};
  for (const auto& san : sans) {
    bool ip = !san.empty() && san.find_first_not_of("0123456789.:abcdefABCDEF") == std::string::npos &&
              (san.find('.') != std::string::npos || san.find(':') != std::string::npos);
    (ip ? request.ip_addresses : request.dns_names).push_back(san);
  }
  auto leaf = tls::IssueCertificate(*ca, request);
  if (!leaf.ok()) return leaf.status();
  if (absl::Status s = WriteFileAtomically(c.ca_file, ca->certificate_pem, 0644); !s.ok()) return s;
  if (absl::Status s = WriteFileAtomically(c.key_file, leaf->private_key_pem, 0600); !s.ok()) return s;
  if (absl::Status s = WriteFileAtomically(c.certificate_file, leaf->certificate_pem, 0644); !s.ok()) return s;
  return c;
}

absl::StatusOr<std::unique_ptr<ObservabilityEndpoint>> ObservabilityEndpoint::Start(
    const ObservabilityEndpointOptions& options, std::vector<std::shared_ptr<prometheus::Collectable>> metrics,
    flows::FlowObserver* observer) {
  std::vector<std::string> sans = options.extra_sans;
  if (options.bind_address != "0.0.0.0" && options.bind_address != "127.0.0.1") sans.push_back(options.bind_address);
  auto certs = EnsureEndpointCertificates(options.certificate_dir, sans);
  if (!certs.ok()) return certs.status();
  std::unique_ptr<ObservabilityEndpoint> e(new ObservabilityEndpoint());
  e->certificates_ = *certs;
  e->metrics_ = std::move(metrics);
  e->observer_ = observer;
  http::HttpServerOptions so;
  so.bind_address = options.bind_address;
  so.port = options.port;
  so.tls.certificate_file = certs->certificate_file;
  so.tls.private_key_file = certs->key_file;
  so.io_threads = 1;
  ObservabilityEndpoint* self = e.get();
  auto server = http::HttpServer::Start(
      so, [self](http::HttpRequest&& request, std::shared_ptr<http::HttpResponder> responder) {
        self->Handle(std::move(request), std::move(responder));
      });
  if (!server.ok()) return server.status();
  e->server_ = std::move(*server);
  return e;
}

ObservabilityEndpoint::~ObservabilityEndpoint() { Shutdown(); }

void ObservabilityEndpoint::Shutdown() {
  if (server_) server_->Shutdown(std::chrono::milliseconds(500));
}

std::string ObservabilityEndpoint::Metrics() const {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& c : metrics_) {
    auto more = c->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

void ObservabilityEndpoint::Handle(http::HttpRequest&& request, std::shared_ptr<http::HttpResponder> responder) {
  if (request.method != "GET") return responder->Respond(Text(405, request.method + " is not supported\n"));
  if (request.path == "/healthz") return responder->Respond(Text(200, "ok\n"));
  if (request.path == "/metrics") {
    http::HttpResponse r = Text(200, Metrics());
    r.SetHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return responder->Respond(std::move(r));
  }
  if (request.path == "/v1/flows" && observer_ != nullptr) {
    auto parsed = flows::FlowQueryFromParams(http::ParseQuery(request.query), NowNs());
    if (!parsed.ok()) return responder->Respond(Text(400, std::string(parsed.status().message()) + "\n"));
    std::string body;
    for (const flows::Flow& f : observer_->GetFlows(parsed->query)) absl::StrAppend(&body, flows::FlowToJson(f).dump(), "\n");
    if (!parsed->follow) {
      http::HttpResponse r = Text(200, std::move(body));
      r.SetHeader("Content-Type", "application/x-ndjson");
      return responder->Respond(std::move(r));
    }
    responder->StartStream(200, {{"Content-Type", "application/x-ndjson"}});
    if (!body.empty()) responder->WriteChunk(std::move(body));
    flows::FlowQuery live = parsed->query;
    live.last = 0;
    live.since_ns.reset();
    uint64_t id = observer_->Subscribe(live, [responder](const flows::Flow& f) {
      // Never blocks: the server queues the chunk for the connection.
      responder->WriteChunk(flows::FlowToJson(f).dump() + "\n");
    });
    flows::FlowObserver* observer = observer_;
    responder->OnAbort([observer, id] { observer->Unsubscribe(id); });
    return;
  }
  responder->Respond(Text(404, "not found: " + request.path + "\n"));
}

}  // namespace kelpie::observability
