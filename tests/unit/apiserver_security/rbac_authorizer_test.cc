// RBAC rule matching, bindings, aggregation and the bootstrap policy, as
// Kubernetes evaluates them; and the authorizer following the store.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "orchestrator/apiserver/bootstrap_policy.h"
#include "orchestrator/apiserver/rbac_authorizer.h"
#include "orchestrator/store/embedded_store.h"
#include "tests/testing/test_env.h"

namespace kelpie::apiserver {
namespace {

using nlohmann::json;

AuthorizationAttributes Res(const std::string& verb, const std::string& group, const std::string& resource,
                            const std::string& ns = "", const std::string& name = "",
                            const std::string& subresource = "") {
  AuthorizationAttributes a;
  a.verb = verb;
  a.resource_request = true;
  a.api_group = group;
  a.api_version = "v1";
  a.resource = resource;
  a.subresource = subresource;
  a.namespace_name = ns;
  a.name = name;
  return a;
}

AuthorizationAttributes Url(const std::string& verb, const std::string& path) {
  AuthorizationAttributes a;
  a.verb = verb;
  a.path = path;
  return a;
}

PolicyRule Rule(std::vector<std::string> verbs, std::vector<std::string> groups, std::vector<std::string> resources,
                std::vector<std::string> names = {}) {
  PolicyRule r;
  r.verbs = std::move(verbs);
  r.api_groups = std::move(groups);
  r.resources = std::move(resources);
  r.resource_names = std::move(names);
  return r;
}

TEST(RuleMatching, VerbsGroupsAndResources) {
  PolicyRule r = Rule({"get", "list"}, {""}, {"pods"});
  EXPECT_TRUE(RuleAllows(r, Res("get", "", "pods", "ns")));
  EXPECT_TRUE(RuleAllows(r, Res("list", "", "pods")));
  EXPECT_FALSE(RuleAllows(r, Res("create", "", "pods", "ns")));
  EXPECT_FALSE(RuleAllows(r, Res("get", "apps", "pods", "ns")));
  EXPECT_FALSE(RuleAllows(r, Res("get", "", "services", "ns")));
  EXPECT_TRUE(RuleAllows(Rule({"*"}, {"*"}, {"*"}), Res("escalate", "rbac.authorization.k8s.io", "roles")));
}

TEST(RuleMatching, SubresourcesAreSeparateResources) {
  PolicyRule pods = Rule({"get"}, {""}, {"pods"});
  EXPECT_FALSE(RuleAllows(pods, Res("get", "", "pods", "ns", "p", "log")));
  EXPECT_TRUE(RuleAllows(Rule({"get"}, {""}, {"pods/log"}), Res("get", "", "pods", "ns", "p", "log")));
  EXPECT_FALSE(RuleAllows(Rule({"get"}, {""}, {"pods/log"}), Res("get", "", "pods", "ns", "p")));
  // "*/status" is every resource's status; "pods/*" is not a wildcard.
  EXPECT_TRUE(RuleAllows(Rule({"update"}, {"*"}, {"*/status"}), Res("update", "apps", "deployments", "ns", "d", "status")));
  EXPECT_FALSE(RuleAllows(Rule({"update"}, {"*"}, {"*/status"}), Res("update", "apps", "deployments", "ns", "d", "scale")));
  EXPECT_FALSE(RuleAllows(Rule({"get"}, {""}, {"pods/*"}), Res("get", "", "pods", "ns", "p", "log")));
}

TEST(RuleMatching, ResourceNamesNeedANamedRequest) {
  PolicyRule r = Rule({"get", "update", "list"}, {"coordination.k8s.io"}, {"leases"}, {"kube-scheduler"});
  EXPECT_TRUE(RuleAllows(r, Res("get", "coordination.k8s.io", "leases", "kube-system", "kube-scheduler")));
  EXPECT_FALSE(RuleAllows(r, Res("get", "coordination.k8s.io", "leases", "kube-system", "other")));
  EXPECT_FALSE(RuleAllows(r, Res("list", "coordination.k8s.io", "leases", "kube-system")));
}

TEST(RuleMatching, NonResourceUrls) {
  PolicyRule r;
  r.verbs = {"get"};
  r.non_resource_urls = {"/healthz", "/apis/*"};
  EXPECT_TRUE(RuleAllows(r, Url("get", "/healthz")));
  EXPECT_FALSE(RuleAllows(r, Url("get", "/healthz/etcd")));
  EXPECT_TRUE(RuleAllows(r, Url("get", "/apis/apps/v1")));
  EXPECT_FALSE(RuleAllows(r, Url("post", "/healthz")));
  EXPECT_FALSE(RuleAllows(r, Url("get", "/metrics")));
  // A resource rule never matches a path, nor a URL rule a resource.
  EXPECT_FALSE(RuleAllows(Rule({"get"}, {"*"}, {"*"}), Url("get", "/metrics")));
  EXPECT_FALSE(RuleAllows(r, Res("get", "", "pods", "ns")));
}

TEST(ForbiddenMessage, IsKubeApiserversWording) {
  AuthorizationAttributes a = Res("list", "", "pods", "default");
  a.user.name = "jane";
  EXPECT_EQ(ForbiddenMessage(a, ""),
            "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"");
  AuthorizationAttributes d = Res("get", "apps", "deployments", "", "web", "scale");
  d.user.name = "bob";
  EXPECT_EQ(ForbiddenMessage(d, "RBAC: [role.rbac.authorization.k8s.io \"x\" not found]"),
            "deployments.apps \"web\" is forbidden: User \"bob\" cannot get resource \"deployments/scale\" in API "
            "group \"apps\" at the cluster scope: RBAC: [role.rbac.authorization.k8s.io \"x\" not found]");
  AuthorizationAttributes u = Url("get", "/metrics");
  u.user.name = "jane";
  EXPECT_EQ(ForbiddenMessage(u, ""), "User \"jane\" cannot get path \"/metrics\"");
}

json ClusterRole(const std::string& name, json rules, json labels = json::object(), json aggregation = nullptr) {
  json r = {{"apiVersion", "rbac.authorization.k8s.io/v1"},
            {"kind", "ClusterRole"},
            {"metadata", {{"name", name}, {"labels", labels}}},
            {"rules", rules}};
  if (!aggregation.is_null()) r["aggregationRule"] = {{"clusterRoleSelectors", aggregation}};
  return r;
}

json Role(const std::string& ns, const std::string& name, json rules) {
  return {{"kind", "Role"}, {"metadata", {{"name", name}, {"namespace", ns}}}, {"rules", rules}};
}

json Binding(const std::string& kind, const std::string& ns, const std::string& name, const std::string& role_kind,
             const std::string& role, json subjects) {
  json meta = {{"name", name}};
  if (!ns.empty()) meta["namespace"] = ns;
  return {{"kind", kind},
          {"metadata", meta},
          {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", role_kind}, {"name", role}}},
          {"subjects", subjects}};
}

json Subject(const std::string& kind, const std::string& name, const std::string& ns = "") {
  json s = {{"kind", kind}, {"name", name}};
  if (!ns.empty()) s["namespace"] = ns;
  return s;
}

json RulesJson(std::vector<PolicyRule> rules) {
  json a = json::array();
  for (const auto& r : rules) a.push_back(PolicyRuleToJson(r));
  return a;
}

UserInfo User(const std::string& name, std::vector<std::string> groups = {}) {
  UserInfo u;
  u.name = name;
  u.groups = std::move(groups);
  return u;
}

AuthorizationAttributes As(const UserInfo& u, AuthorizationAttributes a) {
  a.user = u;
  return a;
}

TEST(RbacPolicy, SubjectsAndScopes) {
  auto policy = RbacPolicy::Build(std::vector<json>{
      ClusterRole("pod-reader", RulesJson({Rule({"get", "list"}, {""}, {"pods"})})),
      Role("team", "cm-writer", RulesJson({Rule({"create"}, {""}, {"configmaps"})})),
      Binding("RoleBinding", "team", "readers", "ClusterRole", "pod-reader",
              json::array({Subject("User", "jane"), Subject("Group", "qa"), Subject("ServiceAccount", "bot")})),
      Binding("RoleBinding", "team", "writers", "Role", "cm-writer", json::array({Subject("User", "jane")})),
      Binding("ClusterRoleBinding", "", "everywhere", "ClusterRole", "pod-reader",
              json::array({Subject("ServiceAccount", "mon", "monitoring")})),
  });
  // A RoleBinding to a ClusterRole grants it in the binding's namespace only.
  EXPECT_TRUE(policy->Authorize(As(User("jane"), Res("list", "", "pods", "team"))).allowed);
  EXPECT_FALSE(policy->Authorize(As(User("jane"), Res("list", "", "pods", "other"))).allowed);
  EXPECT_FALSE(policy->Authorize(As(User("jane"), Res("list", "", "pods"))).allowed);
  EXPECT_TRUE(policy->Authorize(As(User("jane"), Res("create", "", "configmaps", "team"))).allowed);
  EXPECT_FALSE(policy->Authorize(As(User("joe"), Res("create", "", "configmaps", "team"))).allowed);
  EXPECT_TRUE(policy->Authorize(As(User("joe", {"qa"}), Res("get", "", "pods", "team", "p"))).allowed);
  // A ServiceAccount subject without a namespace is in the binding's.
  EXPECT_TRUE(policy->Authorize(As(User("system:serviceaccount:team:bot"), Res("get", "", "pods", "team", "p"))).allowed);
  EXPECT_FALSE(policy->Authorize(As(User("system:serviceaccount:other:bot"), Res("get", "", "pods", "team", "p"))).allowed);
  // A ClusterRoleBinding applies in every namespace and at cluster scope.
  UserInfo mon = User("system:serviceaccount:monitoring:mon");
  EXPECT_TRUE(policy->Authorize(As(mon, Res("list", "", "pods", "anything"))).allowed);
  EXPECT_TRUE(policy->Authorize(As(mon, Res("list", "", "pods"))).allowed);
  AuthorizationDecision d = policy->Authorize(As(User("jane"), Res("list", "", "pods", "team")));
  EXPECT_EQ(d.reason, "RBAC: allowed by RoleBinding \"readers/team\" of ClusterRole \"pod-reader\" to User \"jane\"");
}

TEST(RbacPolicy, MissingRolesAreReportedWhenDenied) {
  auto policy = RbacPolicy::Build(std::vector<json>{
      Binding("RoleBinding", "team", "dangling", "Role", "gone", json::array({Subject("User", "jane")}))});
  AuthorizationDecision d = policy->Authorize(As(User("jane"), Res("get", "", "pods", "team", "p")));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "RBAC: [role.rbac.authorization.k8s.io \"gone\" not found]");
}

TEST(RbacPolicy, AggregationIsTransitiveAndFollowsLabels) {
  json agg_view = json::array({{{"matchLabels", {{"agg/view", "true"}}}}});
  json agg_edit = json::array({{{"matchLabels", {{"agg/edit", "true"}}}}});
  auto policy = RbacPolicy::Build(std::vector<json>{
      ClusterRole("view", json::array(), {{"agg/edit", "true"}}, agg_view),
      ClusterRole("edit", json::array(), {}, agg_edit),
      ClusterRole("read-pods", RulesJson({Rule({"get"}, {""}, {"pods"})}), {{"agg/view", "true"}}),
      ClusterRole("write-cm", RulesJson({Rule({"create"}, {""}, {"configmaps"})}), {{"agg/edit", "true"}}),
      ClusterRole("unlabelled", RulesJson({Rule({"delete"}, {""}, {"nodes"})})),
      // An expression selector and a cycle between two aggregated roles.
      ClusterRole("a", json::array(), {{"ring", "a"}},
                  json::array({{{"matchExpressions", json::array({{{"key", "ring"}, {"operator", "In"}, {"values", {"b"}}}})}}})),
      ClusterRole("b", RulesJson({Rule({"watch"}, {""}, {"secrets"})}), {{"ring", "b"}},
                  json::array({{{"matchLabels", {{"ring", "a"}}}}})),
  });
  const auto* edit = policy->ClusterRoleRules("edit");
  ASSERT_NE(edit, nullptr);
  ASSERT_EQ(edit->size(), 2u);  // write-cm directly, read-pods through view
  EXPECT_EQ(policy->ClusterRoleRules("view")->size(), 1u);
  EXPECT_TRUE(policy->ClusterRoleRules("a")->empty());  // b is aggregated itself and leads back to a
  auto bound = RbacPolicy::Build(std::vector<json>{
      ClusterRole("view", json::array(), {{"agg/edit", "true"}}, agg_view),
      ClusterRole("edit", json::array(), {}, agg_edit),
      ClusterRole("read-pods", RulesJson({Rule({"get"}, {""}, {"pods"})}), {{"agg/view", "true"}}),
      Binding("ClusterRoleBinding", "", "e", "ClusterRole", "edit", json::array({Subject("User", "ed")}))});
  EXPECT_TRUE(bound->Authorize(As(User("ed"), Res("get", "", "pods", "x", "p"))).allowed);
}

TEST(RbacPolicy, RulesForListsWhatApplies) {
  auto policy = RbacPolicy::Build(std::vector<json>{
      ClusterRole("r", json::array({PolicyRuleToJson(Rule({"get"}, {""}, {"pods"})),
                                    {{"verbs", {"get"}}, {"nonResourceURLs", {"/healthz"}}}})),
      Binding("RoleBinding", "team", "b", "ClusterRole", "r", json::array({Subject("User", "jane")}))});
  SubjectRules in_team = policy->RulesFor(User("jane"), "team");
  ASSERT_EQ(in_team.resource_rules.size(), 1u);
  EXPECT_EQ(in_team.resource_rules[0].resources, std::vector<std::string>{"pods"});
  ASSERT_EQ(in_team.non_resource_rules.size(), 1u);
  EXPECT_TRUE(policy->RulesFor(User("jane"), "other").resource_rules.empty());
}

// The bootstrap policy grants what kubectl users expect of each role.
class BootstrapPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<json> objects;
    for (const auto& [key, value] : BootstrapPolicyObjects()) objects.push_back(json::parse(value));
    for (const char* role : {"view", "edit", "admin"}) {
      objects.push_back(Binding("RoleBinding", "team", std::string(role) + "-b", "ClusterRole", role,
                                json::array({Subject("User", std::string(role) + "-user")})));
    }
    policy_ = RbacPolicy::Build(objects);
  }
  bool Can(const std::string& user, AuthorizationAttributes a, std::vector<std::string> groups = {}) {
    groups.push_back("system:authenticated");
    return policy_->Authorize(As(User(user, groups), std::move(a))).allowed;
  }
  std::shared_ptr<const RbacPolicy> policy_;
};

TEST_F(BootstrapPolicyTest, ViewEditAdmin) {
  EXPECT_TRUE(Can("view-user", Res("list", "", "pods", "team")));
  EXPECT_TRUE(Can("view-user", Res("get", "", "pods", "team", "p", "log")));
  EXPECT_TRUE(Can("view-user", Res("watch", "apps", "deployments", "team")));
  EXPECT_FALSE(Can("view-user", Res("get", "", "secrets", "team", "s")));
  EXPECT_FALSE(Can("view-user", Res("create", "", "pods", "team")));
  EXPECT_FALSE(Can("view-user", Res("list", "", "pods", "elsewhere")));

  EXPECT_TRUE(Can("edit-user", Res("create", "", "pods", "team")));
  EXPECT_TRUE(Can("edit-user", Res("get", "", "secrets", "team", "s")));
  EXPECT_TRUE(Can("edit-user", Res("list", "", "pods", "team")));  // view is aggregated into edit
  EXPECT_TRUE(Can("edit-user", Res("create", "", "serviceaccounts", "team", "sa", "token")));
  EXPECT_FALSE(Can("edit-user", Res("create", "rbac.authorization.k8s.io", "rolebindings", "team")));

  EXPECT_TRUE(Can("admin-user", Res("create", "rbac.authorization.k8s.io", "rolebindings", "team")));
  EXPECT_TRUE(Can("admin-user", Res("delete", "apps", "deployments", "team", "d")));
  EXPECT_FALSE(Can("admin-user", Res("delete", "", "nodes", "", "n")));
}

TEST_F(BootstrapPolicyTest, EveryoneAuthenticatedMayDiscoverAndAsk) {
  EXPECT_TRUE(Can("nobody", Url("get", "/apis/apps/v1")));
  EXPECT_TRUE(Can("nobody", Url("get", "/version")));
  EXPECT_TRUE(Can("nobody", Res("create", "authorization.k8s.io", "selfsubjectaccessreviews")));
  EXPECT_TRUE(Can("nobody", Res("create", "authorization.k8s.io", "selfsubjectrulesreviews")));
  EXPECT_FALSE(Can("nobody", Url("get", "/metrics")));
  EXPECT_TRUE(Can("prom", Url("get", "/metrics"), {"system:monitoring"}));
  EXPECT_TRUE(Can("root", Res("delete", "", "nodes", "", "n"), {"system:masters"}));
  EXPECT_TRUE(Can("system:kube-scheduler", Res("create", "", "pods", "team", "p", "binding")));
}

TEST_F(BootstrapPolicyTest, AggregatedRolesAreWrittenWithTheirRules) {
  for (const auto& [key, value] : BootstrapPolicyObjects()) {
    json obj = json::parse(value);
    EXPECT_EQ(obj["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults") << key;
    EXPECT_FALSE(obj["metadata"].value("uid", "").empty()) << key;
    if (key == "/registry/clusterroles/view") {
      EXPECT_GT(obj["rules"].size(), 5u);
    }
  }
}

TEST(RbacAuthorizer, FollowsTheStore) {
  testing::TempDir dir;
  store::EmbeddedStoreOptions o;
  o.data_dir = dir.File("store");
  auto store = store::EmbeddedStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(EnsureBootstrapPolicy(**store).ok());
  // A second run leaves what exists alone.
  ASSERT_TRUE(EnsureBootstrapPolicy(**store).ok());
  auto authz = RbacAuthorizer::Start(**store);
  ASSERT_TRUE(authz.ok()) << authz.status();
  UserInfo jane = User("jane", {"system:authenticated"});
  auto list_pods = As(jane, Res("list", "", "pods", "default"));
  EXPECT_FALSE((*authz)->Authorize(list_pods).allowed);
  EXPECT_TRUE((*authz)->Authorize(As(User("root", {"system:masters"}), list_pods)).allowed);

  auto binding = (*store)->Create("/registry/rolebindings/default/jane-view",
                                  Binding("RoleBinding", "default", "jane-view", "ClusterRole", "view",
                                          json::array({Subject("User", "jane")}))
                                      .dump());
  ASSERT_TRUE(binding.ok());
  auto wait_for = [&](bool want) {
    for (int i = 0; i < 500 && (*authz)->revision() < (*store)->CurrentRevision().value_or(0); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return (*authz)->Authorize(list_pods).allowed == want;
  };
  EXPECT_TRUE(wait_for(true));
  ASSERT_TRUE((*store)->Delete("/registry/rolebindings/default/jane-view").ok());
  EXPECT_TRUE(wait_for(false));
}

}  // namespace
}  // namespace kelpie::apiserver
