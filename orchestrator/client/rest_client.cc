#include "orchestrator/client/rest_client.h"

#include "absl/strings/str_cat.h"
#include "common/http/http_message.h"

namespace kelpie::client {
namespace {

using nlohmann::json;

std::string Query(const ListOptions& o, bool watch) {
  std::vector<std::pair<std::string, std::string>> q;
  if (watch) q.emplace_back("watch", "1");
  if (!o.label_selector.empty()) q.emplace_back("labelSelector", o.label_selector);
  if (!o.field_selector.empty()) q.emplace_back("fieldSelector", o.field_selector);
  if (!watch && o.limit > 0) q.emplace_back("limit", std::to_string(o.limit));
  if (!watch && !o.continue_token.empty()) q.emplace_back("continue", o.continue_token);
  if (!o.resource_version.empty()) q.emplace_back("resourceVersion", o.resource_version);
  if (watch && o.allow_bookmarks) q.emplace_back("allowWatchBookmarks", "true");
  if (watch && o.timeout_seconds > 0) q.emplace_back("timeoutSeconds", std::to_string(o.timeout_seconds));
  std::string out;
  for (const auto& [k, v] : q) {
    absl::StrAppend(&out, out.empty() ? "?" : "&", k, "=", http::PercentEncode(v));
  }
  return out;
}

std::string PatchContentType(PatchType t) {
  switch (t) {
    case PatchType::kMerge: return "application/merge-patch+json";
    case PatchType::kStrategicMerge: return "application/strategic-merge-patch+json";
    case PatchType::kJson: return "application/json-patch+json";
  }
  return "application/merge-patch+json";
}

std::string Meta(const json& object, const char* field) {
  if (!object.contains("metadata") || !object["metadata"].is_object()) return "";
  const json& m = object["metadata"];
  return m.contains(field) && m[field].is_string() ? m[field].get<std::string>() : "";
}

}  // namespace

std::string ResourceRef::Path(const std::string& name_space, const std::string& name,
                              const std::string& subresource) const {
  std::string path = group.empty() ? absl::StrCat("/api/", version) : absl::StrCat("/apis/", group, "/", version);
  if (namespaced && !name_space.empty()) absl::StrAppend(&path, "/namespaces/", name_space);
  absl::StrAppend(&path, "/", resource);
  if (!name.empty()) absl::StrAppend(&path, "/", name);
  if (!name.empty() && !subresource.empty()) absl::StrAppend(&path, "/", subresource);
  return path;
}

namespace resources {
ResourceRef Pods() { return {"", "v1", "pods", true}; }
ResourceRef Nodes() { return {"", "v1", "nodes", false}; }
ResourceRef Services() { return {"", "v1", "services", true}; }
ResourceRef Endpoints() { return {"", "v1", "endpoints", true}; }
ResourceRef EndpointSlices() { return {"discovery.k8s.io", "v1", "endpointslices", true}; }
ResourceRef Namespaces() { return {"", "v1", "namespaces", false}; }
ResourceRef Events() { return {"", "v1", "events", true}; }
ResourceRef Leases() { return {"coordination.k8s.io", "v1", "leases", true}; }
}  // namespace resources

absl::Status StatusFromHttp(int code, const std::string& body) {
  json status = json::parse(body, nullptr, false);
  std::string reason = status.is_object() && status.contains("reason") && status["reason"].is_string()
                           ? status["reason"].get<std::string>()
                           : "";
  std::string message = status.is_object() && status.contains("message") && status["message"].is_string()
                            ? status["message"].get<std::string>()
                            : body.substr(0, 300);
  std::string text = absl::StrCat(message, " (HTTP ", code, reason.empty() ? "" : " ", reason, ")");
  switch (code) {
    case 404: return absl::NotFoundError(text);
    case 409: return reason == "AlreadyExists" ? absl::AlreadyExistsError(text) : absl::AbortedError(text);
    case 410: return absl::OutOfRangeError(text);
    case 400:
    case 413:
    case 415:
    case 422: return absl::InvalidArgumentError(text);
    case 401: return absl::UnauthenticatedError(text);
    case 403: return absl::PermissionDeniedError(text);
    case 429:
    case 503:
    case 504: return absl::UnavailableError(text);
    default: return absl::InternalError(text);
  }
}

bool IsConflict(const absl::Status& s) { return s.code() == absl::StatusCode::kAborted; }
bool IsGone(const absl::Status& s) { return s.code() == absl::StatusCode::kOutOfRange; }

absl::StatusOr<std::unique_ptr<RestClient>> RestClient::Create(http::HttpClientOptions options) {
  auto http = http::HttpClient::Create(std::move(options));
  if (!http.ok()) return http.status();
  return std::unique_ptr<RestClient>(new RestClient(std::move(*http)));
}

absl::StatusOr<json> RestClient::Call(const std::string& method, const std::string& target,
                                      const std::string& content_type, const std::string& body) {
  http::ClientRequest request{method, target, {{"Accept", "application/json"}}, body};
  if (!content_type.empty()) request.headers.emplace_back("Content-Type", content_type);
  auto response = http_->Do(request);
  if (!response.ok()) return absl::UnavailableError(response.status().message());
  if (response->status < 200 || response->status >= 300) return StatusFromHttp(response->status, response->body);
  json parsed = json::parse(response->body, nullptr, false);
  if (parsed.is_discarded()) return absl::InternalError(absl::StrCat(method, " ", target, ": the answer is not JSON"));
  return parsed;
}

absl::StatusOr<json> RestClient::Get(const ResourceRef& ref, const std::string& ns, const std::string& name,
                                     const std::string& subresource) {
  return Call("GET", ref.Path(ns, name, subresource), "", "");
}

absl::StatusOr<json> RestClient::List(const ResourceRef& ref, const std::string& ns, const ListOptions& options) {
  return Call("GET", ref.Path(ns) + Query(options, false), "", "");
}

absl::StatusOr<json> RestClient::ListAll(const ResourceRef& ref, const std::string& ns, ListOptions options) {
  if (options.limit == 0) options.limit = 500;
  json all;
  while (true) {
    auto page = List(ref, ns, options);
    if (!page.ok()) return page.status();
    if (all.is_null()) {
      all = *page;
      all["items"] = json::array();
    }
    if (page->contains("items") && (*page)["items"].is_array()) {
      for (auto& item : (*page)["items"]) all["items"].push_back(std::move(item));
    }
    std::string next = page->contains("metadata") ? (*page)["metadata"].value("continue", "") : "";
    if (next.empty()) break;
    options.continue_token = next;
    options.resource_version.clear();
  }
  if (all.contains("metadata") && all["metadata"].is_object()) all["metadata"].erase("continue");
  return all;
}

absl::StatusOr<json> RestClient::Create(const ResourceRef& ref, const std::string& ns, const json& object) {
  return Call("POST", ref.Path(ns), "application/json", object.dump());
}

absl::StatusOr<json> RestClient::CreateSubresource(const ResourceRef& ref, const std::string& ns,
                                                   const std::string& name, const std::string& subresource,
                                                   const json& object) {
  return Call("POST", ref.Path(ns, name, subresource), "application/json", object.dump());
}

absl::StatusOr<json> RestClient::Update(const ResourceRef& ref, const json& object, const std::string& subresource) {
  return Call("PUT", ref.Path(Meta(object, "namespace"), Meta(object, "name"), subresource), "application/json",
              object.dump());
}

absl::StatusOr<json> RestClient::Patch(const ResourceRef& ref, const std::string& ns, const std::string& name,
                                       PatchType type, const json& patch, const std::string& subresource) {
  return Call("PATCH", ref.Path(ns, name, subresource), PatchContentType(type), patch.dump());
}

absl::StatusOr<json> RestClient::Delete(const ResourceRef& ref, const std::string& ns, const std::string& name,
                                        const json& options) {
  return Call("DELETE", ref.Path(ns, name), options.is_null() ? "" : "application/json",
              options.is_null() ? "" : options.dump());
}

absl::Status RestClient::Watch(const ResourceRef& ref, const std::string& ns, const ListOptions& options,
                               const std::function<bool(const std::string&, json)>& on_event,
                               http::StreamCanceller* canceller) {
  http::ClientRequest request{"GET", ref.Path(ns) + Query(options, true), {{"Accept", "application/json"}}, ""};
  std::string pending;
  bool stopped = false;
  std::string error_body;
  auto on_data = [&](std::string_view data) {
    pending.append(data);
    size_t end;
    while ((end = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, end);
      pending.erase(0, end + 1);
      if (line.empty()) continue;
      json event = json::parse(line, nullptr, false);
      if (!event.is_object() || !event.contains("type") || !event["type"].is_string()) continue;
      std::string type = event["type"];
      if (!on_event(type, event.contains("object") ? std::move(event["object"]) : json())) {
        stopped = true;
        return false;
      }
    }
    return true;
  };
  absl::StatusOr<http::HttpResponse> response =
      canceller != nullptr ? http_->Stream(request, on_data, *canceller) : http_->Stream(request, on_data);
  if (!response.ok()) return response.status();
  if (response->status != 200) return StatusFromHttp(response->status, pending);
  (void)stopped;
  return absl::OkStatus();
}

}  // namespace kelpie::client
