#include "orchestrator/client/rest_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/http/http_message.h"
#include "common/status_macros.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/client/kubeconfig.h"

namespace kelpie::client {

using nlohmann::json;

namespace resources {
const ResourceRef kPods{"", "v1", "pods", true};
const ResourceRef kServices{"", "v1", "services", true};
const ResourceRef kEndpoints{"", "v1", "endpoints", true};
const ResourceRef kNamespaces{"", "v1", "namespaces", false};
const ResourceRef kNodes{"", "v1", "nodes", false};
const ResourceRef kEvents{"", "v1", "events", true};
const ResourceRef kServiceAccounts{"", "v1", "serviceaccounts", true};
const ResourceRef kSecrets{"", "v1", "secrets", true};
const ResourceRef kConfigMaps{"", "v1", "configmaps", true};
const ResourceRef kReplicaSets{"apps", "v1", "replicasets", true};
const ResourceRef kDeployments{"apps", "v1", "deployments", true};
const ResourceRef kDaemonSets{"apps", "v1", "daemonsets", true};
const ResourceRef kStatefulSets{"apps", "v1", "statefulsets", true};
const ResourceRef kControllerRevisions{"apps", "v1", "controllerrevisions", true};
const ResourceRef kJobs{"batch", "v1", "jobs", true};
const ResourceRef kCronJobs{"batch", "v1", "cronjobs", true};
const ResourceRef kEndpointSlices{"discovery.k8s.io", "v1", "endpointslices", true};
const ResourceRef kLeases{"coordination.k8s.io", "v1", "leases", true};
}  // namespace resources

std::string QueryEscape(const std::string& value) { return http::PercentEncode(value); }

std::string ResourceRef::Path(const std::string& ns, const std::string& name, const std::string& subresource) const {
  std::string p = group.empty() ? absl::StrCat("/api/", version) : absl::StrCat("/apis/", group, "/", version);
  if (namespaced && !ns.empty()) absl::StrAppend(&p, "/namespaces/", ns);
  absl::StrAppend(&p, "/", resource);
  if (!name.empty()) absl::StrAppend(&p, "/", name);
  if (!subresource.empty()) absl::StrAppend(&p, "/", subresource);
  return p;
}

namespace {

void AddParam(std::string* query, const char* key, const std::string& value) {
  if (value.empty()) return;
  absl::StrAppend(query, query->empty() ? "?" : "&", key, "=", QueryEscape(value));
}

std::string NameOf(const json& obj) {
  if (!obj.is_object() || !obj.contains("metadata") || !obj["metadata"].is_object()) return "";
  return obj["metadata"].value("name", "");
}

}  // namespace

RestClient::RestClient(std::unique_ptr<http::HttpClient> http) : http_(std::move(http)) {}

absl::StatusOr<std::unique_ptr<RestClient>> RestClient::Create(http::HttpClientOptions options) {
  KELPIE_ASSIGN_OR_RETURN(auto http, http::HttpClient::Create(std::move(options)));
  return std::make_unique<RestClient>(std::move(http));
}

absl::StatusOr<std::unique_ptr<RestClient>> RestClient::FromKubeconfig(const std::string& path) {
  KELPIE_ASSIGN_OR_RETURN(auto contents, LoadKubeconfig(path));
  return Create(ClientOptionsFromKubeconfig(contents));
}

absl::StatusOr<json> RestClient::Request(const std::string& method, const std::string& target,
                                         const std::string& content_type, const std::string& body) {
  http::ClientRequest req;
  req.method = method;
  req.target = target;
  req.headers.emplace_back("Accept", "application/json");
  if (!body.empty()) req.headers.emplace_back("Content-Type", content_type);
  req.body = body;
  KELPIE_ASSIGN_OR_RETURN(http::HttpResponse resp, http_->Do(req));
  if (resp.status < 200 || resp.status >= 300) return StatusFromHttp(resp.status, resp.body);
  if (resp.body.empty()) return json::object();
  json out = json::parse(resp.body, nullptr, false);
  if (out.is_discarded()) {
    return absl::InternalError(absl::StrCat(method, " ", target, ": response is not JSON"));
  }
  return out;
}

absl::StatusOr<json> RestClient::Get(const ResourceRef& ref, const std::string& ns, const std::string& name) {
  return Request("GET", ref.Path(ns, name), "", "");
}

absl::StatusOr<json> RestClient::List(const ResourceRef& ref, const std::string& ns, const ListOptions& o) {
  std::string q;
  AddParam(&q, "labelSelector", o.label_selector);
  AddParam(&q, "fieldSelector", o.field_selector);
  if (o.limit > 0) AddParam(&q, "limit", std::to_string(o.limit));
  AddParam(&q, "continue", o.continue_token);
  AddParam(&q, "resourceVersion", o.resource_version);
  AddParam(&q, "resourceVersionMatch", o.resource_version_match);
  return Request("GET", ref.Path(ns) + q, "", "");
}

absl::StatusOr<json> RestClient::ListAll(const ResourceRef& ref, const std::string& ns, ListOptions options) {
  KELPIE_ASSIGN_OR_RETURN(json result, List(ref, ns, options));
  if (!result.contains("items") || !result["items"].is_array()) result["items"] = json::array();
  while (true) {
    std::string cont;
    if (result.contains("metadata") && result["metadata"].is_object()) {
      cont = result["metadata"].value("continue", "");
    }
    if (cont.empty()) break;
    options.continue_token = cont;
    options.resource_version.clear();
    options.resource_version_match.clear();
    KELPIE_ASSIGN_OR_RETURN(json page, List(ref, ns, options));
    if (page.contains("items") && page["items"].is_array()) {
      for (auto& item : page["items"]) result["items"].push_back(std::move(item));
    }
    result["metadata"]["continue"] = page.contains("metadata") ? page["metadata"].value("continue", "") : "";
  }
  if (result.contains("metadata") && result["metadata"].is_object()) result["metadata"].erase("continue");
  return result;
}

absl::StatusOr<json> RestClient::Create(const ResourceRef& ref, const std::string& ns, const json& obj) {
  return Request("POST", ref.Path(ns), "application/json", obj.dump());
}

absl::StatusOr<json> RestClient::Update(const ResourceRef& ref, const std::string& ns, const json& obj) {
  std::string name = NameOf(obj);
  if (name.empty()) return absl::InvalidArgumentError("Update: object has no metadata.name");
  return Request("PUT", ref.Path(ns, name), "application/json", obj.dump());
}

absl::StatusOr<json> RestClient::UpdateStatus(const ResourceRef& ref, const std::string& ns, const json& obj) {
  std::string name = NameOf(obj);
  if (name.empty()) return absl::InvalidArgumentError("UpdateStatus: object has no metadata.name");
  return Request("PUT", ref.Path(ns, name, "status"), "application/json", obj.dump());
}

absl::StatusOr<json> RestClient::Patch(const ResourceRef& ref, const std::string& ns, const std::string& name,
                                       PatchType type, const json& patch, const std::string& subresource) {
  const char* ct = type == PatchType::kJson             ? "application/json-patch+json"
                   : type == PatchType::kStrategicMerge ? "application/strategic-merge-patch+json"
                                                        : "application/merge-patch+json";
  return Request("PATCH", ref.Path(ns, name, subresource), ct, patch.dump());
}

absl::StatusOr<json> RestClient::Delete(const ResourceRef& ref, const std::string& ns, const std::string& name,
                                        const DeleteOptions& o) {
  json body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (!o.propagation_policy.empty()) body["propagationPolicy"] = o.propagation_policy;
  if (o.grace_period_seconds) body["gracePeriodSeconds"] = *o.grace_period_seconds;
  if (!o.precondition_uid.empty()) body["preconditions"]["uid"] = o.precondition_uid;
  if (!o.precondition_resource_version.empty()) {
    body["preconditions"]["resourceVersion"] = o.precondition_resource_version;
  }
  return Request("DELETE", ref.Path(ns, name), "application/json", body.dump());
}

absl::Status RestClient::Watch(const ResourceRef& ref, const std::string& ns, const WatchOptions& o,
                               const std::function<bool(const WatchEvent&)>& on_event,
                               http::StreamCanceller* canceller) {
  std::string q = "?watch=true";
  AddParam(&q, "labelSelector", o.label_selector);
  AddParam(&q, "fieldSelector", o.field_selector);
  AddParam(&q, "resourceVersion", o.resource_version);
  if (o.allow_bookmarks) AddParam(&q, "allowWatchBookmarks", "true");
  if (o.timeout_seconds > 0) AddParam(&q, "timeoutSeconds", std::to_string(o.timeout_seconds));
  http::ClientRequest req;
  req.target = ref.Path(ns) + q;
  req.headers.emplace_back("Accept", "application/json");
  std::string buffer, error_body;
  bool stopped = false;
  absl::Status parse_error;
  auto on_data = [&](std::string_view data) {
    buffer.append(data.data(), data.size());
    size_t start = 0;
    while (true) {
      size_t nl = buffer.find('\n', start);
      if (nl == std::string::npos) break;
      std::string_view line(buffer.data() + start, nl - start);
      start = nl + 1;
      if (line.find_first_not_of(" \r\t") == std::string_view::npos) continue;
      json ev = json::parse(line, nullptr, false);
      if (ev.is_object() && !ev.contains("type") && ev.value("kind", "") == "Status") {
        error_body = std::string(line);  // body of a non-2xx answer
        continue;
      }
      if (!ev.is_object() || !ev.contains("type") || !ev["type"].is_string()) {
        parse_error = absl::DataLossError(absl::StrCat("watch ", ref.resource, ": malformed event"));
        return false;
      }
      WatchEvent event{ev["type"].get<std::string>(), ev.value("object", json::object())};
      if (!on_event(event)) {
        stopped = true;
        return false;
      }
    }
    buffer.erase(0, start);
    if (buffer.size() > (64u << 20)) {
      parse_error = absl::ResourceExhaustedError("watch event larger than 64 MiB");
      return false;
    }
    return true;
  };
  KELPIE_ASSIGN_OR_RETURN(http::HttpResponse resp, canceller != nullptr ? http_->Stream(req, on_data, *canceller)
                                                                       : http_->Stream(req, on_data));
  if (resp.status < 200 || resp.status >= 300) {
    // The body of a non-2xx answer went to on_data as well; it is a Status.
    return StatusFromHttp(resp.status, error_body.empty() ? buffer : error_body);
  }
  if (stopped) return absl::OkStatus();
  return parse_error;
}

}  // namespace kelpie::client
