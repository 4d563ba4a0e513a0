// What a request URL addresses, parsed as kube-apiserver's RequestInfo does:
// /api/v1/namespaces/NS/pods/NAME/status, /apis/apps/v1/deployments, ...
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace kelpie::apiserver {

struct RequestInfo {
  bool is_resource_request = false;
  std::string api_prefix;  // api | apis
  std::string group;
  std::string version;
  std::string namespace_name;
  std::string resource;  // plural
  std::string name;
  std::string subresource;
  // get, list, watch, create, update, patch, delete, deletecollection
  std::string verb;
};

// Parses `path` (no query) for `method`; `watch` is the query's watch flag.
// Non-resource paths (discovery, health) come back with
// is_resource_request = false.
RequestInfo ParseRequestInfo(const std::string& method, const std::string& path, bool watch);

}  // namespace kelpie::apiserver
