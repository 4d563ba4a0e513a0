// Node authorization, the part of Kubernetes' Node authorizer and
// NodeRestriction admission that keeps one node from touching another's
// objects: a user system:node:<name> in group system:nodes may write only
// its own Node (and its status), its own Lease in kube-node-lease, and the
// pods bound to it (status, deletion); it may not create pods (no mirror
// pods here). Everything it may do at all still comes from RBAC (the
// system:node ClusterRole bound to system:nodes), which this decorates.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "orchestrator/apiserver/authorizer.h"

namespace kelpie::apiserver {

// spec.nodeName of a pod, nullopt when the pod does not exist.
using PodNodeLookup = std::function<std::optional<std::string>(const std::string& ns, const std::string& name)>;

class NodeAuthorizer : public Authorizer {
 public:
  NodeAuthorizer(std::shared_ptr<Authorizer> next, PodNodeLookup pod_node)
      : next_(std::move(next)), pod_node_(std::move(pod_node)) {}

  AuthorizationDecision Authorize(const AuthorizationAttributes& attributes) const override;
  SubjectRules RulesFor(const UserInfo& user, const std::string& namespace_name) const override {
    return next_->RulesFor(user, namespace_name);
  }

  // "<name>" when `user` is a node's identity, "" otherwise.
  static std::string NodeNameOf(const UserInfo& user);

 private:
  std::shared_ptr<Authorizer> next_;
  PodNodeLookup pod_node_;
};

}  // namespace kelpie::apiserver
