#include "orchestrator/apiserver/api_server.h"


#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/version.h"
#include "orchestrator/api/api_error.h"
#include "orchestrator/apiserver/request_info.h"
#include "orchestrator/apiserver/resource_api.h"

namespace kelpie::apiserver {

std::string StatusJson(int code, const std::string& reason, const std::string& message) {
  nlohmann::json j = {{"kind", "Status"},       {"apiVersion", "v1"},
                      {"metadata", nlohmann::json::object()},
                      {"status", "Failure"},    {"message", message},
                      {"reason", reason},       {"code", code}};
  return j.dump();
}

namespace {

http::HttpResponse JsonResponse(int status, std::string body) {
  http::HttpResponse r;
  r.status = status;
  r.SetHeader("Content-Type", "application/json");
  r.SetHeader("Cache-Control", "no-cache, private");
  r.body = std::move(body);
  return r;
}

http::HttpResponse TextResponse(int status, std::string body) {
  http::HttpResponse r;
  r.status = status;
  r.SetHeader("Content-Type", "text/plain; charset=utf-8");
  r.SetHeader("X-Content-Type-Options", "nosniff");
  r.SetHeader("Cache-Control", "no-cache, private");
  r.body = std::move(body);
  return r;
}

std::string VersionJson() {
  const VersionInfo& v = GetVersionInfo();
  nlohmann::json j = {{"major", v.kube_major},
                      {"minor", v.kube_minor},
                      {"gitVersion", v.git_version},
                      {"gitCommit", v.git_commit},
                      {"gitTreeState", v.git_tree_state},
                      {"buildDate", v.build_date},
                      {"goVersion", "n/a (C++20, " + v.compiler + ")"},
                      {"compiler", "gc"},
                      {"platform", v.platform}};
  return j.dump(2);
}

}  // namespace

ApiServer::ApiServer(ApiServerOptions options, ResourceApi* resources)
    : options_(std::move(options)), resources_(resources) {
  readiness_checks_.emplace_back("ping", [] { return absl::OkStatus(); });
}

ApiServer::~ApiServer() { Shutdown(std::chrono::milliseconds(0)); }

void ApiServer::AddReadinessCheck(std::string name, HealthCheck check) {
  std::lock_guard<std::mutex> lock(checks_mu_);
  readiness_checks_.emplace_back(std::move(name), std::move(check));
}

absl::Status ApiServer::Start() {
  http::HttpServerOptions o;
  o.bind_address = options_.bind_address;
  o.port = options_.secure_port;
  o.tls = options_.tls;
  o.io_threads = options_.io_threads;
  auto server = http::HttpServer::Start(
      o, [this](http::HttpRequest&& req, std::shared_ptr<http::HttpResponder> resp) {
        Handle(std::move(req), std::move(resp));
      });
  if (!server.ok()) return server.status();
  server_ = std::move(*server);
  return absl::OkStatus();
}

uint16_t ApiServer::port() const { return server_ ? server_->port() : 0; }

void ApiServer::Shutdown(std::chrono::milliseconds grace) {
  shutting_down_ = true;
  if (server_) server_->Shutdown(grace);
}

http::HttpResponse ApiServer::HealthResponse(const http::HttpRequest& request, bool readiness) {
  bool verbose = absl::StrContains(request.query, "verbose");
  std::string body;
  bool ok = true;
  std::vector<std::pair<std::string, HealthCheck>> checks;
  {
    std::lock_guard<std::mutex> lock(checks_mu_);
    checks = readiness ? readiness_checks_
                       : std::vector<std::pair<std::string, HealthCheck>>{readiness_checks_.front()};
  }
  for (const auto& [name, check] : checks) {
    absl::Status s = check();
    if (s.ok()) {
      absl::StrAppend(&body, "[+]", name, " ok\n");
    } else {
      ok = false;
      absl::StrAppend(&body, "[-]", name, " failed: ", s.message(), "\n");
    }
  }
  if (readiness && shutting_down_) {
    ok = false;
    body += "[-]shutdown failed: the server is shutting down\n";
  }
  std::string kind = readiness ? "readyz" : (request.path == "/livez" ? "livez" : "healthz");
  if (ok) {
    if (!verbose) return TextResponse(200, "ok");
    return TextResponse(200, absl::StrCat(body, kind, " check passed\n"));
  }
  return TextResponse(500, absl::StrCat(body, kind, " check failed\n"));
}

void ApiServer::Handle(http::HttpRequest&& request, std::shared_ptr<http::HttpResponder> responder) {
  const std::string& path = request.path;
  bool read_only = request.method == "GET" || request.method == "HEAD";
  if (path == "/healthz" || path == "/livez" || path == "/readyz" ||
      absl::StartsWith(path, "/healthz/") || absl::StartsWith(path, "/livez/") ||
      absl::StartsWith(path, "/readyz/")) {
    if (!read_only) {
      return responder->Respond(JsonResponse(
          405, StatusJson(405, "MethodNotAllowed",
                          absl::StrCat(request.method, " is not supported on ", path))));
    }
    bool readiness = absl::StartsWith(path, "/readyz");
    return responder->Respond(HealthResponse(request, readiness));
  }
  if (path == "/version" || path == "/version/") {
    if (!read_only) {
      return responder->Respond(JsonResponse(
          405, StatusJson(405, "MethodNotAllowed",
                          absl::StrCat(request.method, " is not supported on /version"))));
    }
    return responder->Respond(JsonResponse(200, VersionJson()));
  }
  if (resources_ != nullptr && (path == "/api" || path == "/apis" || absl::StartsWith(path, "/api/") ||
                                absl::StartsWith(path, "/apis/"))) {
    if (!request.peer.has_client_certificate) {
      return RespondError(*responder, api::Unauthorized("Unauthorized"));
    }
    const auto& groups = request.peer.organizations;
    bool is_master = std::find(groups.begin(), groups.end(), "system:masters") != groups.end();
    bool watch = false;
    for (const auto& [k, v] : http::ParseQuery(request.query)) {
      if (k == "watch") watch = v == "1" || v == "true";
    }
    RequestInfo info = ParseRequestInfo(request.method, path, watch);
    if (!is_master) {
      return RespondError(*responder,
                          api::Forbidden(request.peer.common_name, info.verb.empty() ? "get" : info.verb,
                                         info.group, info.resource.empty() ? path : info.resource,
                                         info.namespace_name,
                                         "only members of system:masters are authorized until RBAC "
                                         "is available"));
    }
    if (!info.is_resource_request) {
      if (!read_only) {
        return RespondError(*responder, api::MethodNotAllowed(absl::StrCat(request.method, " is not supported on ", path)));
      }
      if (resources_->ServeDiscovery(request, *responder)) return;
    } else {
      return resources_->Serve(info, std::move(request), std::move(responder));
    }
  }
  responder->Respond(JsonResponse(
      404, StatusJson(404, "NotFound", absl::StrCat("the server could not find the requested resource (",
                                                    request.method, " ", path, ")"))));
}

}  // namespace kelpie::apiserver
