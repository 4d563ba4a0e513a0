#include "orchestrator/api/resource_registry.h"

#include <algorithm>

namespace kelpie::api {

std::string ResourceType::StoragePrefix() const { return "/registry/" + plural + "/"; }

std::vector<std::string> ResourceType::Verbs() const {
  if (!verbs.empty()) return verbs;
  return {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"};
}

bool ResourceType::Serves(std::string_view subresource) const {
  return std::find(subresources.begin(), subresources.end(), subresource) != subresources.end();
}

SubresourceType DescribeSubresource(const ResourceType& parent, std::string_view subresource) {
  if (subresource == "scale") return {"autoscaling", "v1", "Scale", {"get", "patch", "update"}};
  if (subresource == "binding") return {"", "v1", "Binding", {"create"}};
  if (subresource == "eviction") return {"policy", "v1", "Eviction", {"create"}};
  if (subresource == "token") return {"authentication.k8s.io", "v1", "TokenRequest", {"create"}};
  if (subresource == "log") return {"", "v1", "Pod", {"get"}};
  if (subresource == "exec") return {"", "v1", "PodExecOptions", {"create", "get"}};
  if (subresource == "attach") return {"", "v1", "PodAttachOptions", {"create", "get"}};
  if (subresource == "portforward") return {"", "v1", "PodPortForwardOptions", {"create", "get"}};
  return {parent.group, parent.version, parent.kind, {"get", "patch", "update"}};
}

const ResourceRegistry& ResourceRegistry::Builtin() {
  static const ResourceRegistry registry = [] {
    ResourceRegistry r;
    auto add = [&r](ResourceType t) { r.types_.push_back(std::move(t)); };
    // core/v1
    add({"", "v1", "Namespace", "namespaces", "namespace", false, {"ns"}, {}, {"status"}, true});
    add({"", "v1", "Pod", "pods", "pod", true, {"po"}, {"all"}, {"status", "binding", "eviction", "log", "exec", "attach", "portforward"}, false});
    add({"", "v1", "Service", "services", "service", true, {"svc"}, {"all"}, {"status"}, true});
    add({"", "v1", "Endpoints", "endpoints", "endpoints", true, {"ep"}, {}, {}, false});
    add({"", "v1", "Node", "nodes", "node", false, {"no"}, {}, {"status"}, false});
    add({"", "v1", "ConfigMap", "configmaps", "configmap", true, {"cm"}, {}, {}, false});
    add({"", "v1", "Secret", "secrets", "secret", true, {}, {}, {}, false});
    add({"", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, {"sa"}, {}, {"token"}, false});
    add({"", "v1", "Event", "events", "event", true, {"ev"}, {}, {}, false});
    // apps/v1
    add({"apps", "v1", "Deployment", "deployments", "deployment", true, {"deploy"}, {"all"}, {"status", "scale"}, false});
    add({"apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, {"rs"}, {"all"}, {"status", "scale"}, false});
    add({"apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, {"ds"}, {"all"}, {"status"}, false});
    add({"apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, {"sts"}, {"all"}, {"status", "scale"}, false});
    add({"apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", true, {}, {}, {}, false});
    // batch/v1
    add({"batch", "v1", "Job", "jobs", "job", true, {}, {"all"}, {"status"}, false});
    add({"batch", "v1", "CronJob", "cronjobs", "cronjob", true, {"cj"}, {"all"}, {"status"}, false});
    // discovery.k8s.io/v1
    add({"discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", true, {}, {}, {}, false});
    // coordination.k8s.io/v1
    add({"coordination.k8s.io", "v1", "Lease", "leases", "lease", true, {}, {}, {}, false});
    // networking.k8s.io/v1
    add({"networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", true, {"netpol"}, {}, {}, false});
    // rbac.authorization.k8s.io/v1
    add({"rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true, {}, {}, {}, false});
    add({"rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false, {}, {}, {}, false});
    add({"rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true, {}, {}, {}, false});
    add({"rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", false, {}, {}, {}, false});
    // authentication.k8s.io/v1 and authorization.k8s.io/v1: requests
    // answered by the API server, never stored.
    const std::vector<std::string> create_only = {"create"};
    add({"authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", false, {}, {}, {}, false, create_only});
    add({"authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "tokenreview", false, {}, {}, {}, false, create_only});
    add({"authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", "localsubjectaccessreview", true, {}, {}, {}, false, create_only});
    add({"authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", false, {}, {}, {}, false, create_only});
    add({"authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", false, {}, {}, {}, false, create_only});
    add({"authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview", false, {}, {}, {}, false, create_only});
    // scheduling.k8s.io/v1
    add({"scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", false, {"pc"}, {}, {}, false});
    return r;
  }();
  return registry;
}

const ResourceType* ResourceRegistry::Find(std::string_view group, std::string_view version,
                                           std::string_view plural) const {
  for (const auto& t : types_) {
    if (t.group == group && t.version == version && t.plural == plural) return &t;
  }
  return nullptr;
}

const ResourceType* ResourceRegistry::FindKind(std::string_view group, std::string_view kind) const {
  for (const auto& t : types_) {
    if (t.group == group && t.kind == kind) return &t;
  }
  return nullptr;
}

std::vector<std::string> ResourceRegistry::Groups() const {
  std::vector<std::string> groups;
  for (const auto& t : types_) {
    if (std::find(groups.begin(), groups.end(), t.group) == groups.end()) groups.push_back(t.group);
  }
  return groups;
}

std::vector<const ResourceType*> ResourceRegistry::InGroupVersion(std::string_view group,
                                                                  std::string_view version) const {
  std::vector<const ResourceType*> out;
  for (const auto& t : types_) {
    if (t.group == group && t.version == version) out.push_back(&t);
  }
  return out;
}

}  // namespace kelpie::api
