// The node authorizer confines a node's writes to its own Node, Lease and
// pods, and passes everything else (and every other user) to the next
// authorizer. The next authorizer here allows everything, so each denial
// comes from the node rules alone.
#include "orchestrator/apiserver/node_authorizer.h"

#include <gtest/gtest.h>

#include <map>

namespace kelpie::apiserver {
namespace {

class AllowAll : public Authorizer {
 public:
  AuthorizationDecision Authorize(const AuthorizationAttributes&) const override { return {true, "allow-all"}; }
  SubjectRules RulesFor(const UserInfo&, const std::string&) const override { return {}; }
};

class NodeAuthorizerTest : public ::testing::Test {
 protected:
  NodeAuthorizerTest()
      : authorizer_(std::make_shared<AllowAll>(), [this](const std::string& ns, const std::string& name) {
          auto it = pods_.find(ns + "/" + name);
          return it == pods_.end() ? std::nullopt : std::optional<std::string>(it->second);
        }) {}

  AuthorizationAttributes Node(const std::string& verb, const std::string& group, const std::string& resource,
                               const std::string& ns, const std::string& name, const std::string& sub = "") {
    AuthorizationAttributes a;
    a.user = UserInfo{"system:node:a", "", {"system:nodes", "system:authenticated"}, {}};
    a.verb = verb;
    a.resource_request = true;
    a.api_group = group;
    a.resource = resource;
    a.subresource = sub;
    a.namespace_name = ns;
    a.name = name;
    return a;
  }

  std::map<std::string, std::string> pods_ = {{"default/on-a", "a"}, {"default/on-b", "b"}};
  NodeAuthorizer authorizer_;
};

TEST_F(NodeAuthorizerTest, NodeNameComesFromTheNodeIdentityOnly) {
  EXPECT_EQ(NodeAuthorizer::NodeNameOf(UserInfo{"system:node:a", "", {"system:nodes"}, {}}), "a");
  EXPECT_EQ(NodeAuthorizer::NodeNameOf(UserInfo{"system:node:a", "", {"system:authenticated"}, {}}), "");
  EXPECT_EQ(NodeAuthorizer::NodeNameOf(UserInfo{"jane", "", {"system:nodes"}, {}}), "");
}

TEST_F(NodeAuthorizerTest, OwnNodeAndLeaseOnly) {
  EXPECT_TRUE(authorizer_.Authorize(Node("patch", "", "nodes", "", "a")).allowed);
  EXPECT_TRUE(authorizer_.Authorize(Node("update", "", "nodes", "", "a", "status")).allowed);
  EXPECT_TRUE(authorizer_.Authorize(Node("create", "", "nodes", "", "")).allowed);
  auto other = authorizer_.Authorize(Node("patch", "", "nodes", "", "b"));
  EXPECT_FALSE(other.allowed);
  EXPECT_EQ(other.reason, "node \"a\" may only change its own Node object");
  EXPECT_FALSE(authorizer_.Authorize(Node("delete", "", "nodes", "", "b")).allowed);
  EXPECT_FALSE(authorizer_.Authorize(Node("deletecollection", "", "nodes", "", "")).allowed);
  EXPECT_TRUE(authorizer_.Authorize(Node("update", "coordination.k8s.io", "leases", "kube-node-lease", "a")).allowed);
  EXPECT_FALSE(authorizer_.Authorize(Node("update", "coordination.k8s.io", "leases", "kube-node-lease", "b")).allowed);
  EXPECT_FALSE(authorizer_.Authorize(Node("update", "coordination.k8s.io", "leases", "kube-system", "a")).allowed);
  // Reads are RBAC's business.
  EXPECT_TRUE(authorizer_.Authorize(Node("get", "", "nodes", "", "b")).allowed);
}

TEST_F(NodeAuthorizerTest, PodsBoundToItOnly) {
  EXPECT_TRUE(authorizer_.Authorize(Node("patch", "", "pods", "default", "on-a", "status")).allowed);
  EXPECT_TRUE(authorizer_.Authorize(Node("delete", "", "pods", "default", "on-a")).allowed);
  auto theirs = authorizer_.Authorize(Node("delete", "", "pods", "default", "on-b"));
  EXPECT_FALSE(theirs.allowed);
  EXPECT_EQ(theirs.reason, "node \"a\" can only change pods bound to it; this one is on \"b\"");
  EXPECT_FALSE(authorizer_.Authorize(Node("patch", "", "pods", "default", "missing", "status")).allowed);
  EXPECT_FALSE(authorizer_.Authorize(Node("create", "", "pods", "default", "")).allowed);
  EXPECT_TRUE(authorizer_.Authorize(Node("create", "", "pods", "default", "on-b", "eviction")).allowed);
}

TEST_F(NodeAuthorizerTest, OtherUsersPassThrough) {
  AuthorizationAttributes a = Node("delete", "", "pods", "default", "on-b");
  a.user = UserInfo{"admin", "", {"system:masters"}, {}};
  EXPECT_TRUE(authorizer_.Authorize(a).allowed);
}

}  // namespace
}  // namespace kelpie::apiserver
