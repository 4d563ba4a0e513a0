// The Kubernetes REST API over the Store for every registered kind:
// get, list (selectors, pagination, resourceVersion), watch (chunked JSON
// event stream with bookmarks), create (generateName), update with
// optimistic concurrency, patch (JSON, merge, strategic merge), delete
// (finalizers, propagation policy), deletecollection, the status
// subresource, dryRun, and discovery documents.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/http/http_message.h"
#include "orchestrator/api/api_error.h"
#include "orchestrator/api/resource_registry.h"
#include "orchestrator/apiserver/request_info.h"
#include "orchestrator/store/store.h"

namespace kelpie::apiserver {

class ResourceStrategy;

class ResourceApi {
 public:
  // `strategies` maps a kind ("Service") to its per-kind behaviour.
  ResourceApi(store::Store& store, const api::ResourceRegistry& registry,
              std::map<std::string, std::shared_ptr<ResourceStrategy>> strategies = {});

  // Creates default, kube-system, kube-public and kube-node-lease when
  // missing.
  absl::Status EnsureDefaultNamespaces();

  // Creates the `kubernetes` Service in `default` with `cluster_ip` (the
  // first address of the service range) when missing, and keeps its
  // Endpoints pointing at the API server's advertised address.
  absl::Status EnsureKubernetesService(const std::string& cluster_ip, const std::string& advertise_ip, int port);

  // Serves a parsed resource request; the caller authenticated and
  // authorized it.
  void Serve(const RequestInfo& info, http::HttpRequest&& request,
             std::shared_ptr<http::HttpResponder> responder);

  // Discovery: /api, /api/v1, /apis, /apis/GROUP, /apis/GROUP/VERSION.
  // Returns false when `path` is not a discovery path.
  bool ServeDiscovery(const http::HttpRequest& request, http::HttpResponder& responder);

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

// Sends an ApiError as a Status response.
void RespondError(http::HttpResponder& responder, const api::ApiError& error);

}  // namespace kelpie::apiserver
