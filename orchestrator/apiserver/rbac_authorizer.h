// RBAC as Kubernetes evaluates it. Roles, ClusterRoles, RoleBindings and
// ClusterRoleBindings are read from the store into an immutable in-memory
// policy that a store watch per kind keeps current; requests read the
// newest policy without locking the writer out. Members of system:masters
// are always allowed (as kube-apiserver's privileged-group authorizer).
//
// Matching follows Kubernetes: verbs and apiGroups with "*", resources with
// "*", "<resource>/<subresource>" and "*/<subresource>", resourceNames
// (never matching a request without a name), nonResourceURLs exact or with
// a trailing "*"; RoleBindings may refer to ClusterRoles; ClusterRoles with
// an aggregationRule get the rules of every ClusterRole their selectors
// match (transitively), as the clusterrole-aggregation controller would
// write them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "orchestrator/apiserver/authorizer.h"
#include "orchestrator/store/store.h"

namespace kelpie::apiserver {

// Rule matching, exposed for tests and the review APIs.
bool RuleAllows(const PolicyRule& rule, const AuthorizationAttributes& attributes);
PolicyRule PolicyRuleFromJson(const nlohmann::json& rule);
nlohmann::json PolicyRuleToJson(const PolicyRule& rule);

// An immutable snapshot of the cluster's RBAC objects.
class RbacPolicy {
 public:
  // `objects`: Role, ClusterRole, RoleBinding and ClusterRoleBinding
  // documents (kind decides); others are ignored.
  static std::shared_ptr<const RbacPolicy> Build(const std::vector<nlohmann::json>& objects);
  static std::shared_ptr<const RbacPolicy> Build(const std::vector<const nlohmann::json*>& objects);

  AuthorizationDecision Authorize(const AuthorizationAttributes& attributes) const;
  SubjectRules RulesFor(const UserInfo& user, const std::string& namespace_name) const;

  // The effective rules of a ClusterRole (after aggregation); nullptr when
  // there is no such role.
  const std::vector<PolicyRule>* ClusterRoleRules(const std::string& name) const;

  struct Subject {
    std::string kind;  // User, Group, ServiceAccount
    std::string name;
    std::string namespace_name;
  };
  struct Binding {
    std::string kind;  // RoleBinding or ClusterRoleBinding
    std::string namespace_name;
    std::string name;
    std::string role_kind;  // Role or ClusterRole
    std::string role_name;
    std::vector<Subject> subjects;
  };

 private:
  // Calls `visit(binding, subject, rules)` for every rule of every binding
  // that applies to `user` in `namespace_name` (cluster bindings first);
  // stops when it returns false. Missing roles go to `errors`.
  template <typename Visit>
  void VisitRules(const UserInfo& user, const std::string& namespace_name, std::vector<std::string>* errors,
                  Visit visit) const;
  const std::vector<PolicyRule>* RulesOf(const Binding& binding, std::vector<std::string>* errors) const;

  std::map<std::string, std::vector<PolicyRule>> cluster_roles_;   // effective rules by name
  std::map<std::string, std::vector<PolicyRule>> roles_;           // by "<ns>/<name>"
  std::vector<Binding> cluster_role_bindings_;
  std::map<std::string, std::vector<Binding>> role_bindings_;      // by namespace
};

class RbacAuthorizer : public Authorizer {
 public:
  // Lists the RBAC objects and watches them from then on.
  static absl::StatusOr<std::unique_ptr<RbacAuthorizer>> Start(store::Store& store);
  // A fixed policy (tests, tools).
  explicit RbacAuthorizer(std::shared_ptr<const RbacPolicy> policy);
  ~RbacAuthorizer() override;

  AuthorizationDecision Authorize(const AuthorizationAttributes& attributes) const override;
  SubjectRules RulesFor(const UserInfo& user, const std::string& namespace_name) const override;

  std::shared_ptr<const RbacPolicy> policy() const;
  // The store revision the policy reflects.
  int64_t revision() const { return revision_.load(); }

 private:
  RbacAuthorizer() = default;
  absl::Status ListAndWatch();
  void Run();
  void Publish();

  store::Store* store_ = nullptr;
  mutable std::mutex policy_mu_;
  std::shared_ptr<const RbacPolicy> policy_;
  std::atomic<int64_t> revision_{0};

  // Written only by the worker thread (and Start before it runs).
  std::map<std::string, std::shared_ptr<const nlohmann::json>> objects_;  // by store key
  std::vector<std::unique_ptr<store::WatchHandle>> watches_;

  // Watch callbacks only queue; the worker applies.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<store::WatchBatch> batches_;
  bool resync_ = false;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace kelpie::apiserver
