#include "orchestrator/kubelet/http_node_api.h"

#include "absl/strings/str_cat.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;

// The Kubernetes Status of a failed call as an absl::Status of the same
// meaning.
absl::Status FromHttp(int code, const std::string& body) {
  json status = json::parse(body, nullptr, false);
  std::string message = status.is_object() && status.contains("message") && status["message"].is_string()
                            ? status["message"].get<std::string>()
                            : body.substr(0, 200);
  std::string text = absl::StrCat("HTTP ", code, ": ", message);
  switch (code) {
    case 404: return absl::NotFoundError(text);
    case 409:
      return status.is_object() && status.value("reason", "") == "AlreadyExists" ? absl::AlreadyExistsError(text)
                                                                                 : absl::FailedPreconditionError(text);
    case 400:
    case 422: return absl::InvalidArgumentError(text);
    case 401: return absl::UnauthenticatedError(text);
    case 403: return absl::PermissionDeniedError(text);
    case 429:
    case 503: return absl::UnavailableError(text);
    default: return absl::InternalError(text);
  }
}

}  // namespace

absl::StatusOr<json> HttpNodeApi::Call(const std::string& method, const std::string& target,
                                       const std::string& content_type, const std::string& body) {
  http::ClientRequest request{method, target, {}, body};
  if (!content_type.empty()) request.headers.emplace_back("Content-Type", content_type);
  request.headers.emplace_back("Accept", "application/json");
  auto response = client_->Do(request);
  if (!response.ok()) return response.status();
  if (response->status < 200 || response->status >= 300) return FromHttp(response->status, response->body);
  json parsed = json::parse(response->body, nullptr, false);
  if (parsed.is_discarded()) return absl::InternalError(absl::StrCat(method, " ", target, ": the answer is not JSON"));
  return parsed;
}

absl::StatusOr<json> HttpNodeApi::GetNode(const std::string& name) {
  return Call("GET", absl::StrCat("/api/v1/nodes/", name), "", "");
}
absl::StatusOr<json> HttpNodeApi::CreateNode(const json& node) {
  return Call("POST", "/api/v1/nodes", "application/json", node.dump());
}
absl::StatusOr<json> HttpNodeApi::PatchNode(const std::string& name, const json& patch) {
  return Call("PATCH", absl::StrCat("/api/v1/nodes/", name), "application/merge-patch+json", patch.dump());
}
absl::StatusOr<json> HttpNodeApi::PatchNodeStatus(const std::string& name, const json& patch) {
  return Call("PATCH", absl::StrCat("/api/v1/nodes/", name, "/status"), "application/merge-patch+json",
              patch.dump());
}
absl::StatusOr<json> HttpNodeApi::GetLease(const std::string& name_space, const std::string& name) {
  return Call("GET", absl::StrCat("/apis/coordination.k8s.io/v1/namespaces/", name_space, "/leases/", name), "", "");
}
absl::StatusOr<json> HttpNodeApi::CreateLease(const json& lease) {
  return Call("POST",
              absl::StrCat("/apis/coordination.k8s.io/v1/namespaces/", lease["metadata"].value("namespace", ""),
                           "/leases"),
              "application/json", lease.dump());
}
absl::StatusOr<json> HttpNodeApi::UpdateLease(const json& lease) {
  return Call("PUT",
              absl::StrCat("/apis/coordination.k8s.io/v1/namespaces/", lease["metadata"].value("namespace", ""),
                           "/leases/", lease["metadata"].value("name", "")),
              "application/json", lease.dump());
}

}  // namespace kelpie::kubelet
