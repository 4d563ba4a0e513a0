// A Kubernetes REST client for Kelpie's own components (kubelet, service
// proxy, controllers, scheduler): objects are JSON documents, resources are
// addressed by group/version/resource, errors are absl::Status values whose
// code says what the API's Status said (IsNotFound, IsConflict, ...).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/http/http_client.h"

namespace kelpie::client {

struct ResourceRef {
  std::string group;  // "" for the core group
  std::string version = "v1";
  std::string resource;  // plural: pods
  bool namespaced = true;

  // /api/v1/namespaces/NS/pods/NAME/SUBRESOURCE (parts left out when empty).
  std::string Path(const std::string& name_space, const std::string& name = "",
                   const std::string& subresource = "") const;
};

// The resources components use most.
namespace resources {
ResourceRef Pods();
ResourceRef Nodes();
ResourceRef Services();
ResourceRef Endpoints();
ResourceRef EndpointSlices();
ResourceRef Namespaces();
ResourceRef Events();
ResourceRef Leases();
}  // namespace resources

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;
  std::string continue_token;
  std::string resource_version;
  // Watch only.
  bool allow_bookmarks = true;
  int timeout_seconds = 0;
};

enum class PatchType { kMerge, kStrategicMerge, kJson };

// Kubernetes API failures as absl::Status codes:
//   404 -> kNotFound, 409 AlreadyExists -> kAlreadyExists, 409 Conflict ->
//   kAborted, 410 Gone -> kOutOfRange, 400/422 -> kInvalidArgument,
//   401 -> kUnauthenticated, 403 -> kPermissionDenied, 429/503/transport ->
//   kUnavailable. The message is the Status message.
absl::Status StatusFromHttp(int code, const std::string& body);
// (absl::IsNotFound and absl::IsAlreadyExists serve 404 and AlreadyExists.)
bool IsConflict(const absl::Status& s);
bool IsGone(const absl::Status& s);

// Calls are serialized on one kept-alive connection (watches each use their
// own); components that need parallel requests create several clients.
class RestClient {
 public:
  // `options` says where the server is and how to authenticate (see
  // ClientOptionsFromKubeconfig).
  static absl::StatusOr<std::unique_ptr<RestClient>> Create(http::HttpClientOptions options);

  absl::StatusOr<nlohmann::json> Get(const ResourceRef& ref, const std::string& name_space, const std::string& name,
                                     const std::string& subresource = "");
  // One page; follow metadata.continue for more (ListAll does).
  absl::StatusOr<nlohmann::json> List(const ResourceRef& ref, const std::string& name_space,
                                      const ListOptions& options = {});
  // Every page, items concatenated; metadata.resourceVersion is the first
  // page's (the list is one snapshot).
  absl::StatusOr<nlohmann::json> ListAll(const ResourceRef& ref, const std::string& name_space,
                                         ListOptions options = {});
  absl::StatusOr<nlohmann::json> Create(const ResourceRef& ref, const std::string& name_space,
                                        const nlohmann::json& object);
  // POST to a subresource of one object (pods/NAME/binding, .../eviction).
  absl::StatusOr<nlohmann::json> CreateSubresource(const ResourceRef& ref, const std::string& name_space,
                                                   const std::string& name, const std::string& subresource,
                                                   const nlohmann::json& object);
  absl::StatusOr<nlohmann::json> Update(const ResourceRef& ref, const nlohmann::json& object,
                                        const std::string& subresource = "");
  absl::StatusOr<nlohmann::json> Patch(const ResourceRef& ref, const std::string& name_space,
                                       const std::string& name, PatchType type, const nlohmann::json& patch,
                                       const std::string& subresource = "");
  // `options` is a DeleteOptions body (propagationPolicy,
  // gracePeriodSeconds, preconditions); may be null.
  absl::StatusOr<nlohmann::json> Delete(const ResourceRef& ref, const std::string& name_space,
                                        const std::string& name, const nlohmann::json& options = nullptr);

  // Watches until the stream ends, `on_event` returns false or `canceller`
  // fires. Events: type ADDED/MODIFIED/DELETED/BOOKMARK/ERROR and object.
  absl::Status Watch(const ResourceRef& ref, const std::string& name_space, const ListOptions& options,
                     const std::function<bool(const std::string& type, nlohmann::json object)>& on_event,
                     http::StreamCanceller* canceller = nullptr);

 private:
  explicit RestClient(std::unique_ptr<http::HttpClient> http) : http_(std::move(http)) {}
  absl::StatusOr<nlohmann::json> Call(const std::string& method, const std::string& target,
                                      const std::string& content_type, const std::string& body);
  std::unique_ptr<http::HttpClient> http_;
};

}  // namespace kelpie::client
