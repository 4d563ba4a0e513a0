#include "orchestrator/apiserver/bootstrap_policy.h"

#include <initializer_list>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "orchestrator/api/object_meta.h"
#include "orchestrator/apiserver/rbac_authorizer.h"

namespace kelpie::apiserver {
namespace {

using nlohmann::json;
using Strings = std::initializer_list<const char*>;

const Strings kRead = {"get", "list", "watch"};
const Strings kWrite = {"create", "delete", "deletecollection", "patch", "update"};
const Strings kReadWrite = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"};

json Array(Strings s) {
  json a = json::array();
  for (const char* v : s) a.push_back(v);
  return a;
}

json Rule(Strings verbs, Strings groups, Strings resources, Strings names = {}) {
  json r = {{"verbs", Array(verbs)}, {"apiGroups", Array(groups)}, {"resources", Array(resources)}};
  if (names.size() > 0) r["resourceNames"] = Array(names);
  return r;
}

json UrlRule(Strings verbs, Strings urls) { return {{"verbs", Array(verbs)}, {"nonResourceURLs", Array(urls)}}; }

json Metadata(const std::string& name, json labels = json::object()) {
  labels["kubernetes.io/bootstrapping"] = "rbac-defaults";
  return {{"name", name},
          {"uid", api::NewUid()},
          {"creationTimestamp", api::NowRfc3339()},
          {"labels", labels},
          {"annotations", {{"rbac.authorization.kubernetes.io/autoupdate", "true"}}}};
}

json ClusterRole(const std::string& name, json rules, json labels = json::object()) {
  return {{"apiVersion", "rbac.authorization.k8s.io/v1"},
          {"kind", "ClusterRole"},
          {"metadata", Metadata(name, std::move(labels))},
          {"rules", std::move(rules)}};
}

json AggregatedClusterRole(const std::string& name, const std::string& aggregate_label, json labels = json::object()) {
  json role = ClusterRole(name, json::array(), std::move(labels));
  role["aggregationRule"] = {
      {"clusterRoleSelectors", json::array({{{"matchLabels", {{aggregate_label, "true"}}}}})}};
  return role;
}

json Subject(const std::string& kind, const std::string& name) {
  return {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", kind}, {"name", name}};
}

json ClusterRoleBinding(const std::string& name, const std::string& role, json subjects) {
  return {{"apiVersion", "rbac.authorization.k8s.io/v1"},
          {"kind", "ClusterRoleBinding"},
          {"metadata", Metadata(name)},
          {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "ClusterRole"}, {"name", role}}},
          {"subjects", std::move(subjects)}};
}

std::vector<json> ClusterRoles() {
  std::vector<json> roles;
  roles.push_back(ClusterRole("cluster-admin", json::array({Rule({"*"}, {"*"}, {"*"}), UrlRule({"*"}, {"*"})})));
  roles.push_back(AggregatedClusterRole("admin", "rbac.authorization.k8s.io/aggregate-to-admin"));
  roles.push_back(AggregatedClusterRole("edit", "rbac.authorization.k8s.io/aggregate-to-edit",
                                        {{"rbac.authorization.k8s.io/aggregate-to-admin", "true"}}));
  roles.push_back(AggregatedClusterRole("view", "rbac.authorization.k8s.io/aggregate-to-view",
                                        {{"rbac.authorization.k8s.io/aggregate-to-edit", "true"}}));

  // What admin adds over edit: managing access within the namespace.
  roles.push_back(ClusterRole("system:aggregate-to-admin",
                              json::array({Rule({"create"}, {"authorization.k8s.io"}, {"localsubjectaccessreviews"}),
                                           Rule(kReadWrite, {"rbac.authorization.k8s.io"}, {"rolebindings", "roles"})}),
                              {{"rbac.authorization.k8s.io/aggregate-to-admin", "true"}}));
  // What edit adds over view: changing workloads, secrets and service
  // accounts (and acting as them), but not roles.
  roles.push_back(ClusterRole(
      "system:aggregate-to-edit",
      json::array({
          Rule(kRead, {""}, {"pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"}),
          Rule({"impersonate"}, {""}, {"serviceaccounts"}),
          Rule(kWrite, {""}, {"pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"}),
          Rule({"create"}, {""}, {"pods/eviction"}),
          Rule(kWrite, {""},
               {"configmaps", "events", "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale",
                "secrets", "serviceaccounts", "services", "services/proxy"}),
          Rule({"create"}, {""}, {"serviceaccounts/token"}),
          Rule(kWrite, {"apps"},
               {"daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
                "replicasets/scale", "statefulsets", "statefulsets/scale"}),
          Rule(kWrite, {"autoscaling"}, {"horizontalpodautoscalers"}),
          Rule(kWrite, {"batch"}, {"cronjobs", "jobs"}),
          Rule(kWrite, {"policy"}, {"poddisruptionbudgets"}),
          Rule(kWrite, {"networking.k8s.io"}, {"ingresses", "networkpolicies"}),
          Rule(kReadWrite, {"coordination.k8s.io"}, {"leases"}),
      }),
      {{"rbac.authorization.k8s.io/aggregate-to-edit", "true"}}));
  // view: read everything in a namespace except secrets and roles.
  roles.push_back(ClusterRole(
      "system:aggregate-to-view",
      json::array({
          Rule(kRead, {""},
               {"configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
                "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                "services/status"}),
          Rule(kRead, {""},
               {"bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"}),
          Rule(kRead, {""}, {"namespaces"}),
          Rule(kRead, {"discovery.k8s.io"}, {"endpointslices"}),
          Rule(kRead, {"apps"},
               {"controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets",
                "statefulsets/scale", "statefulsets/status"}),
          Rule(kRead, {"autoscaling"}, {"horizontalpodautoscalers", "horizontalpodautoscalers/status"}),
          Rule(kRead, {"batch"}, {"cronjobs", "cronjobs/status", "jobs", "jobs/status"}),
          Rule(kRead, {"policy"}, {"poddisruptionbudgets", "poddisruptionbudgets/status"}),
          Rule(kRead, {"networking.k8s.io"}, {"ingresses", "ingresses/status", "networkpolicies"}),
      }),
      {{"rbac.authorization.k8s.io/aggregate-to-view", "true"}}));

  roles.push_back(ClusterRole(
      "system:basic-user",
      json::array({Rule({"create"}, {"authorization.k8s.io"}, {"selfsubjectaccessreviews", "selfsubjectrulesreviews"}),
                   Rule({"create"}, {"authentication.k8s.io"}, {"selfsubjectreviews"})})));
  roles.push_back(ClusterRole("system:discovery",
                              json::array({UrlRule({"get"}, {"/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                                             "/openapi", "/openapi/*", "/readyz", "/version",
                                                             "/version/"})})));
  roles.push_back(ClusterRole("system:public-info-viewer",
                              json::array({UrlRule({"get"}, {"/healthz", "/livez", "/readyz", "/version", "/version/"})})));
  roles.push_back(ClusterRole("system:auth-delegator",
                              json::array({Rule({"create"}, {"authentication.k8s.io"}, {"tokenreviews"}),
                                           Rule({"create"}, {"authorization.k8s.io"}, {"subjectaccessreviews"})})));
  roles.push_back(ClusterRole("system:monitoring",
                              json::array({UrlRule({"get"}, {"/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics",
                                                             "/readyz", "/readyz/*"})})));

  // The control-plane components, for when they run with their own
  // credentials.
  roles.push_back(ClusterRole(
      "system:kube-scheduler",
      json::array({
          Rule({"create", "patch", "update"}, {"", "events.k8s.io"}, {"events"}),
          Rule({"create"}, {"coordination.k8s.io"}, {"leases"}),
          Rule({"get", "update"}, {"coordination.k8s.io"}, {"leases"}, {"kube-scheduler"}),
          Rule(kRead, {""}, {"nodes"}),
          Rule({"delete", "get", "list", "watch"}, {""}, {"pods"}),
          Rule({"create"}, {""}, {"bindings", "pods/binding"}),
          Rule({"patch", "update"}, {""}, {"pods/status"}),
          Rule(kRead, {""}, {"replicationcontrollers", "services"}),
          Rule(kRead, {"apps"}, {"replicasets", "statefulsets"}),
          Rule(kRead, {"policy"}, {"poddisruptionbudgets"}),
          Rule(kRead, {""}, {"persistentvolumeclaims", "persistentvolumes"}),
          Rule({"create"}, {"authentication.k8s.io"}, {"tokenreviews"}),
          Rule({"create"}, {"authorization.k8s.io"}, {"subjectaccessreviews"}),
          Rule(kRead, {"storage.k8s.io"}, {"csinodes", "csidrivers", "csistoragecapacities", "storageclasses"}),
          Rule(kRead, {""}, {"namespaces"}),
      })));
  roles.push_back(ClusterRole(
      "system:kube-controller-manager",
      json::array({
          Rule({"create", "patch", "update"}, {"", "events.k8s.io"}, {"events"}),
          Rule({"create"}, {"coordination.k8s.io"}, {"leases"}),
          Rule({"get", "update"}, {"coordination.k8s.io"}, {"leases"}, {"kube-controller-manager"}),
          Rule({"create"}, {""}, {"secrets", "serviceaccounts"}),
          Rule({"delete"}, {""}, {"secrets"}),
          Rule({"get"}, {""}, {"configmaps", "namespaces", "secrets", "serviceaccounts"}),
          Rule({"update"}, {""}, {"secrets", "serviceaccounts"}),
          Rule({"create"}, {"authentication.k8s.io"}, {"tokenreviews"}),
          Rule({"create"}, {"authorization.k8s.io"}, {"subjectaccessreviews"}),
          Rule({"list", "watch"}, {"*"}, {"*"}),
          Rule({"create"}, {""}, {"serviceaccounts/token"}),
      })));
  // What a node agent needs (Kubernetes grants this through the Node
  // authorizer; here it is an ordinary role to bind).
  roles.push_back(ClusterRole(
      "system:node",
      json::array({
          Rule({"create"}, {"authentication.k8s.io"}, {"tokenreviews"}),
          Rule({"create"}, {"authorization.k8s.io"}, {"localsubjectaccessreviews", "subjectaccessreviews"}),
          Rule(kRead, {""}, {"services"}),
          Rule({"create", "get", "list", "watch"}, {""}, {"nodes"}),
          Rule({"patch", "update"}, {""}, {"nodes/status"}),
          Rule({"patch", "update"}, {""}, {"nodes"}),
          Rule({"create", "patch", "update"}, {"", "events.k8s.io"}, {"events"}),
          Rule(kRead, {""}, {"pods"}),
          Rule({"create", "delete"}, {""}, {"pods"}),
          Rule({"patch", "update"}, {""}, {"pods/status"}),
          Rule({"create"}, {""}, {"pods/eviction"}),
          Rule({"get"}, {""}, {"configmaps", "secrets"}),
          Rule({"get"}, {""}, {"persistentvolumeclaims", "persistentvolumes"}),
          Rule({"get"}, {""}, {"endpoints"}),
          Rule(kRead, {"discovery.k8s.io"}, {"endpointslices"}),
          Rule({"create", "delete", "get", "patch", "update"}, {"coordination.k8s.io"}, {"leases"}),
          Rule({"create"}, {""}, {"serviceaccounts/token"}),
      })));
  return roles;
}

std::vector<json> ClusterRoleBindings() {
  std::vector<json> b;
  b.push_back(ClusterRoleBinding("cluster-admin", "cluster-admin", json::array({Subject("Group", "system:masters")})));
  b.push_back(ClusterRoleBinding("system:basic-user", "system:basic-user",
                                 json::array({Subject("Group", "system:authenticated")})));
  b.push_back(ClusterRoleBinding("system:discovery", "system:discovery",
                                 json::array({Subject("Group", "system:authenticated")})));
  b.push_back(ClusterRoleBinding(
      "system:public-info-viewer", "system:public-info-viewer",
      json::array({Subject("Group", "system:authenticated"), Subject("Group", "system:unauthenticated")})));
  b.push_back(ClusterRoleBinding("system:monitoring", "system:monitoring",
                                 json::array({Subject("Group", "system:monitoring")})));
  b.push_back(ClusterRoleBinding("system:kube-scheduler", "system:kube-scheduler",
                                 json::array({Subject("User", "system:kube-scheduler")})));
  b.push_back(ClusterRoleBinding("system:kube-controller-manager", "system:kube-controller-manager",
                                 json::array({Subject("User", "system:kube-controller-manager")})));
  return b;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> BootstrapPolicyObjects() {
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<json> roles = ClusterRoles();
  // Aggregated roles are written with their aggregated rules, as the
  // clusterrole-aggregation controller would leave them (the authorizer
  // aggregates at evaluation time either way).
  auto policy = RbacPolicy::Build(roles);
  for (auto& r : roles) {
    if (!r.contains("aggregationRule")) continue;
    json rules = json::array();
    if (const auto* effective = policy->ClusterRoleRules(r["metadata"]["name"].get<std::string>())) {
      for (const auto& rule : *effective) rules.push_back(PolicyRuleToJson(rule));
    }
    r["rules"] = std::move(rules);
  }
  for (const auto& r : roles) {
    out.emplace_back(absl::StrCat("/registry/clusterroles/", r["metadata"]["name"].get<std::string>()), r.dump());
  }
  for (const auto& b : ClusterRoleBindings()) {
    out.emplace_back(absl::StrCat("/registry/clusterrolebindings/", b["metadata"]["name"].get<std::string>()),
                     b.dump());
  }
  return out;
}

absl::Status EnsureBootstrapPolicy(store::Store& store) {
  for (auto& [key, value] : BootstrapPolicyObjects()) {
    auto r = store.Create(key, std::move(value));
    if (!r.ok() && r.status().code() != absl::StatusCode::kAlreadyExists) {
      return absl::Status(r.status().code(), absl::StrCat("creating ", key, ": ", r.status().message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace kelpie::apiserver
