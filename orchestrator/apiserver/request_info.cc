#include "orchestrator/apiserver/request_info.h"

#include <vector>

#include "absl/strings/str_split.h"

namespace kelpie::apiserver {

RequestInfo ParseRequestInfo(const std::string& method, const std::string& path, bool watch) {
  RequestInfo info;
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  if (parts.empty()) return info;
  size_t i = 0;
  if (parts[0] == "api") {
    info.api_prefix = "api";
    i = 1;
    if (parts.size() < 3) return info;  // /api, /api/v1 are discovery
    info.version = parts[i++];
  } else if (parts[0] == "apis") {
    info.api_prefix = "apis";
    if (parts.size() < 4) return info;  // /apis, /apis/g, /apis/g/v are discovery
    info.group = parts[1];
    info.version = parts[2];
    i = 3;
  } else {
    return info;
  }
  info.is_resource_request = true;
  std::vector<std::string> rest(parts.begin() + static_cast<long>(i), parts.end());
  // namespaces/NS/RESOURCE/... is namespaced; namespaces/NAME[/sub] is the
  // Namespace object itself.
  // (…/namespaces/NAME/status and /finalize are the Namespace's own
  // subresources, as in kube-apiserver.)
  if (rest.size() >= 2 && rest[0] == "namespaces") {
    info.namespace_name = rest[1];
    if (rest.size() >= 3 && rest[2] != "status" && rest[2] != "finalize") {
      rest.erase(rest.begin(), rest.begin() + 2);
    }
  }
  if (!rest.empty()) info.resource = rest[0];
  if (rest.size() >= 2) info.name = rest[1];
  if (rest.size() >= 3) info.subresource = rest[2];
  if (rest.size() > 3) info.subresource += "/" + rest[3];  // e.g. proxy paths; rejected later

  if (method == "GET" || method == "HEAD") {
    info.verb = info.name.empty() ? (watch ? "watch" : "list") : (watch ? "watch" : "get");
  } else if (method == "POST") {
    info.verb = "create";
  } else if (method == "PUT") {
    info.verb = "update";
  } else if (method == "PATCH") {
    info.verb = "patch";
  } else if (method == "DELETE") {
    info.verb = info.name.empty() ? "deletecollection" : "delete";
  } else {
    info.verb = "";
  }
  return info;
}

}  // namespace kelpie::apiserver
