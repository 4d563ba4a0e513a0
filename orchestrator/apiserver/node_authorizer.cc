#include "orchestrator/apiserver/node_authorizer.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kelpie::apiserver {
namespace {

bool IsWrite(const std::string& verb) {
  return verb == "create" || verb == "update" || verb == "patch" || verb == "delete" || verb == "deletecollection";
}

AuthorizationDecision Deny(std::string reason) { return {false, std::move(reason)}; }

}  // namespace

std::string NodeAuthorizer::NodeNameOf(const UserInfo& user) {
  constexpr char kPrefix[] = "system:node:";
  if (!user.InGroup("system:nodes") || !absl::StartsWith(user.name, kPrefix)) return "";
  return user.name.substr(sizeof(kPrefix) - 1);
}

AuthorizationDecision NodeAuthorizer::Authorize(const AuthorizationAttributes& a) const {
  const std::string node = NodeNameOf(a.user);
  if (node.empty() || !a.resource_request || !IsWrite(a.verb)) return next_->Authorize(a);
  if (a.api_group.empty() && a.resource == "nodes") {
    // A create carries its name only in the body, which authorization does
    // not see (Kubernetes checks it in NodeRestriction admission).
    if (a.verb == "create" && a.name.empty()) return next_->Authorize(a);
    if (a.verb == "deletecollection" || a.name != node) {
      return Deny(absl::StrCat("node \"", node, "\" may only change its own Node object"));
    }
  } else if (a.api_group == "coordination.k8s.io" && a.resource == "leases") {
    if (a.namespace_name != "kube-node-lease" || a.name != node || a.verb == "deletecollection") {
      return Deny(absl::StrCat("node \"", node, "\" may only change its own Lease in kube-node-lease"));
    }
  } else if (a.api_group.empty() && a.resource == "pods") {
    if (a.verb == "create" && a.subresource.empty()) {
      return Deny(absl::StrCat("node \"", node, "\" may not create pods"));
    }
    if (a.verb == "deletecollection") return Deny(absl::StrCat("node \"", node, "\" may not delete pods in bulk"));
    if (a.subresource != "eviction") {
      std::optional<std::string> bound = pod_node_ ? pod_node_(a.namespace_name, a.name) : std::nullopt;
      if (!bound.has_value()) return Deny(absl::StrCat("node \"", node, "\" can only change pods bound to it: no such pod"));
      if (*bound != node) {
        return Deny(absl::StrCat("node \"", node, "\" can only change pods bound to it; this one is on \"", *bound, "\""));
      }
    }
  }
  return next_->Authorize(a);
}

}  // namespace kelpie::apiserver
