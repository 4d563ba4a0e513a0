// Generic JSON client for the Kubernetes REST API (any resource, addressed
// by ResourceRef), over http::HttpClient. Thread-safe. Errors are
// absl::Status with the HTTP code and Status reason (see api_errors.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/http/http_client.h"

namespace kelpie::client {

// Which collection: group "" is the core API (/api/v1), anything else
// /apis/<group>/<version>.
struct ResourceRef {
  std::string group;
  std::string version = "v1";
  std::string resource;  // plural, e.g. "pods"
  bool namespaced = true;

  // /api/v1/namespaces/<ns>/<resource>[/<name>[/<subresource>]]; `ns` is
  // ignored for cluster-scoped resources and may be "" (all namespaces) for lists.
  std::string Path(const std::string& ns, const std::string& name = "",
                   const std::string& subresource = "") const;
  std::string ApiVersion() const { return group.empty() ? version : group + "/" + version; }
};

// Commonly used resources.
namespace resources {
extern const ResourceRef kPods, kServices, kEndpoints, kNamespaces, kNodes, kEvents, kServiceAccounts,
    kSecrets, kConfigMaps, kReplicaSets, kDeployments, kDaemonSets, kStatefulSets, kControllerRevisions, kJobs, kCronJobs,
    kEndpointSlices, kLeases;
}  // namespace resources

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;  // 0: no paging
  std::string continue_token;
  std::string resource_version;        // "" = most recent (quorum read)
  std::string resource_version_match;  // "", "NotOlderThan", "Exact"
};

struct WatchOptions {
  std::string label_selector;
  std::string field_selector;
  std::string resource_version;  // watch events after this version
  bool allow_bookmarks = true;
  int64_t timeout_seconds = 0;  // 0: server default
};

struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
  nlohmann::json object;
};

enum class PatchType { kMerge, kStrategicMerge, kJson };

struct DeleteOptions {
  std::string propagation_policy;  // "", "Orphan", "Background", "Foreground"
  std::optional<int64_t> grace_period_seconds;
  std::string precondition_uid;
  std::string precondition_resource_version;
};

class RestClient {
 public:
  explicit RestClient(std::unique_ptr<http::HttpClient> http);
  static absl::StatusOr<std::unique_ptr<RestClient>> Create(http::HttpClientOptions options);
  static absl::StatusOr<std::unique_ptr<RestClient>> FromKubeconfig(const std::string& path);

  absl::StatusOr<nlohmann::json> Get(const ResourceRef& ref, const std::string& ns, const std::string& name);
  // One page (or everything when options.limit is 0).
  absl::StatusOr<nlohmann::json> List(const ResourceRef& ref, const std::string& ns,
                                      const ListOptions& options = {});
  // Follows continue tokens and returns one list whose metadata.resourceVersion
  // is that of the first page (the snapshot all pages come from).
  absl::StatusOr<nlohmann::json> ListAll(const ResourceRef& ref, const std::string& ns, ListOptions options);
  absl::StatusOr<nlohmann::json> Create(const ResourceRef& ref, const std::string& ns, const nlohmann::json& obj);
  // PUT of `obj` (its metadata.name and resourceVersion: a stale version is Conflict).
  absl::StatusOr<nlohmann::json> Update(const ResourceRef& ref, const std::string& ns, const nlohmann::json& obj);
  absl::StatusOr<nlohmann::json> UpdateStatus(const ResourceRef& ref, const std::string& ns,
                                              const nlohmann::json& obj);
  absl::StatusOr<nlohmann::json> Patch(const ResourceRef& ref, const std::string& ns, const std::string& name,
                                       PatchType type, const nlohmann::json& patch,
                                       const std::string& subresource = "");
  // Returns what the server answered (the deleted object, or the object
  // still present with deletionTimestamp/finalizers, or a Status).
  absl::StatusOr<nlohmann::json> Delete(const ResourceRef& ref, const std::string& ns, const std::string& name,
                                        const DeleteOptions& options = {});
  // Streams watch events to `on_event` until it returns false, the server
  // ends the stream (OK), or an error (a 410 before the stream is IsGone; an
  // ERROR event is passed to on_event like any other). Blocks the caller.
  // `canceller` (optional) ends the watch from another thread.
  absl::Status Watch(const ResourceRef& ref, const std::string& ns, const WatchOptions& options,
                     const std::function<bool(const WatchEvent&)>& on_event,
                     http::StreamCanceller* canceller = nullptr);

  // Any request with a JSON body and response (e.g. subresources not above).
  absl::StatusOr<nlohmann::json> Request(const std::string& method, const std::string& target,
                                         const std::string& content_type, const std::string& body);

 private:
  std::unique_ptr<http::HttpClient> http_;
};

// Percent-encodes a query parameter value.
std::string QueryEscape(const std::string& value);

}  // namespace kelpie::client
