// Namespace deletion, garbage collection in its three modes, the default
// ServiceAccount and node lifecycle, through `kelpie server`'s controller
// manager, with fake nodes whose Leases the test renews or lets expire.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "orchestrator/client/api_errors.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/rest_event_recorder.h"
#include "tests/integration/controllers/fake_cluster.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie::controllers {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Eventually;
using testing::ListItems;
namespace res = client::resources;

class LifecycleTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> args) {
    auto s = testing::KelpieServer::Start(dir_.File("data"), testing::FreeTcpPort(), dir_.File("server.log"), args);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    auto c = client::RestClient::FromKubeconfig(server_->kubeconfig());
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }
  json ConfigMap(const std::string& name, const std::vector<json>& owners = {},
                 const std::vector<std::string>& finalizers = {}) {
    json cm = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}}};
    for (const auto& o : owners) {
      cm["metadata"]["ownerReferences"].push_back({{"apiVersion", "v1"},
                                                   {"kind", "ConfigMap"},
                                                   {"name", o["metadata"]["name"]},
                                                   {"uid", o["metadata"]["uid"]},
                                                   {"blockOwnerDeletion", true}});
    }
    if (!finalizers.empty()) cm["metadata"]["finalizers"] = finalizers;
    auto created = client_->Create(res::kConfigMaps, "default", cm);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *created : json();
  }
  bool Gone(const std::string& name) {
    return client::IsNotFound(client_->Get(res::kConfigMaps, "default", name).status());
  }
  testing::TempDir dir_;
  std::unique_ptr<testing::KelpieServer> server_;
  std::unique_ptr<client::RestClient> client_;
};

TEST_F(LifecycleTest, GarbageCollectionInAllThreeModes) {
  StartServer({});
  // Background: the owner goes at once, dependents (and theirs) follow.
  json bg = ConfigMap("bg");
  json bg_child = ConfigMap("bg-child", {bg});
  ConfigMap("bg-grandchild", {bg_child});
  ASSERT_TRUE(client_->Delete(res::kConfigMaps, "default", "bg").ok());
  EXPECT_TRUE(Gone("bg"));
  ASSERT_TRUE(Eventually([&] { return Gone("bg-child") && Gone("bg-grandchild"); })) << server_->Log();

  // Foreground: dependents first; a dependent held by a finalizer holds the owner.
  json fg = ConfigMap("fg");
  json fg_child = ConfigMap("fg-child", {fg});
  ConfigMap("fg-held", {fg}, {"example.com/hold"});
  ConfigMap("fg-grandchild", {fg_child});
  client::DeleteOptions foreground;
  foreground.propagation_policy = "Foreground";
  ASSERT_TRUE(client_->Delete(res::kConfigMaps, "default", "fg", foreground).ok());
  ASSERT_TRUE(Eventually([&] { return Gone("fg-child") && Gone("fg-grandchild"); }));
  auto held_owner = client_->Get(res::kConfigMaps, "default", "fg");
  ASSERT_TRUE(held_owner.ok()) << "the owner went before its blocking dependent";
  EXPECT_TRUE(held_owner->dump().find("foregroundDeletion") != std::string::npos) << held_owner->dump();
  auto held = client_->Get(res::kConfigMaps, "default", "fg-held");
  ASSERT_TRUE(held.ok());
  EXPECT_TRUE((*held)["metadata"].contains("deletionTimestamp"));
  (*held)["metadata"]["finalizers"] = json::array();
  ASSERT_TRUE(client_->Update(res::kConfigMaps, "default", *held).ok());
  ASSERT_TRUE(Eventually([&] { return Gone("fg-held") && Gone("fg"); })) << server_->Log();

  // Orphan: the owner goes, dependents stay without the reference.
  json orphan = ConfigMap("orphan");
  ConfigMap("orphan-child-1", {orphan});
  ConfigMap("orphan-child-2", {orphan});
  client::DeleteOptions orphaning;
  orphaning.propagation_policy = "Orphan";
  ASSERT_TRUE(client_->Delete(res::kConfigMaps, "default", "orphan", orphaning).ok());
  ASSERT_TRUE(Eventually([&] { return Gone("orphan"); })) << server_->Log();
  for (const char* name : {"orphan-child-1", "orphan-child-2"}) {
    auto child = client_->Get(res::kConfigMaps, "default", name);
    ASSERT_TRUE(child.ok()) << name;
    EXPECT_FALSE((*child)["metadata"].contains("ownerReferences")) << child->dump();
  }

  // Two owners: losing one keeps the dependent and drops the dangling reference.
  json a = ConfigMap("owner-a");
  json b = ConfigMap("owner-b");
  ConfigMap("shared", {a, b});
  ASSERT_TRUE(client_->Delete(res::kConfigMaps, "default", "owner-a").ok());
  ASSERT_TRUE(Eventually([&] {
    auto s = client_->Get(res::kConfigMaps, "default", "shared");
    return s.ok() && (*s)["metadata"]["ownerReferences"].size() == 1 &&
           (*s)["metadata"]["ownerReferences"][0]["name"] == "owner-b";
  }));
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(Gone("shared"));
  // A reference to an owner that never existed (by uid) is garbage.
  json ghost = {{"metadata", {{"name", "owner-b"}, {"uid", "00000000-0000-0000-0000-000000000000"}}}};
  ConfigMap("ghost-child", {ghost});
  ASSERT_TRUE(Eventually([&] { return Gone("ghost-child"); }));
}

TEST_F(LifecycleTest, NamespaceDeletionLeavesNothingBehindAndDefaultServiceAccount) {
  StartServer({});
  json ns = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "doomed"}}}};
  ASSERT_TRUE(client_->Create(res::kNamespaces, "", ns).ok());
  ASSERT_TRUE(Eventually([&] { return client_->Get(res::kServiceAccounts, "doomed", "default").ok(); }));
  // The default account comes back when deleted.
  ASSERT_TRUE(client_->Delete(res::kServiceAccounts, "doomed", "default").ok());
  ASSERT_TRUE(Eventually([&] { return client_->Get(res::kServiceAccounts, "doomed", "default").ok(); }));
  for (const auto& ns_name : {"default", "kube-system"}) {
    EXPECT_TRUE(Eventually([&] { return client_->Get(res::kServiceAccounts, ns_name, "default").ok(); })) << ns_name;
  }

  json cm = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "c1"}}}};
  ASSERT_TRUE(client_->Create(res::kConfigMaps, "doomed", cm).ok());
  json held = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "c2"}}}};
  auto parent = client_->Create(res::kConfigMaps, "doomed", held);
  ASSERT_TRUE(parent.ok());
  json child = {{"apiVersion", "v1"},
                {"kind", "ConfigMap"},
                {"metadata",
                 {{"name", "c3"},
                  {"ownerReferences",
                   json::array({{{"apiVersion", "v1"},
                                 {"kind", "ConfigMap"},
                                 {"name", "c2"},
                                 {"uid", (*parent)["metadata"]["uid"]}}})}}}};
  ASSERT_TRUE(client_->Create(res::kConfigMaps, "doomed", child).ok());
  json secret = {{"apiVersion", "v1"}, {"kind", "Secret"}, {"metadata", {{"name", "s"}}}, {"stringData", {{"k", "v"}}}};
  ASSERT_TRUE(client_->Create(res::kSecrets, "doomed", secret).ok());
  json svc = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "web"}}},
              {"spec", {{"selector", {{"app", "web"}}}, {"ports", json::array({{{"port", 80}}})}}}};
  ASSERT_TRUE(client_->Create(res::kServices, "doomed", svc).ok());
  ASSERT_TRUE(client_->Create(res::kPods, "doomed", testing::TestPod("web-1", {{"app", "web"}})).ok());
  ASSERT_TRUE(testing::MarkPodRunning(*client_, "doomed", "web-1", "10.42.0.50", true).ok());
  ASSERT_TRUE(Eventually([&] {
    return !ListItems(*client_, res::kEndpointSlices, "doomed").empty() &&
           client_->Get(res::kEndpoints, "doomed", "web").ok();
  }));

  ASSERT_TRUE(client_->Delete(res::kNamespaces, "", "doomed").ok());
  ASSERT_TRUE(Eventually([&] { return client::IsNotFound(client_->Get(res::kNamespaces, "", "doomed").status()); }))
      << client_->Get(res::kNamespaces, "", "doomed")->dump() << server_->Log();
  for (const auto* ref : {&res::kConfigMaps, &res::kSecrets, &res::kServices, &res::kPods, &res::kEndpoints,
                          &res::kEndpointSlices, &res::kServiceAccounts, &res::kEvents}) {
    EXPECT_TRUE(ListItems(*client_, *ref, "doomed").empty()) << ref->resource;
  }
  // The name can be used again.
  ASSERT_TRUE(client_->Create(res::kNamespaces, "", ns).ok());
  ASSERT_TRUE(Eventually([&] { return client_->Get(res::kServiceAccounts, "doomed", "default").ok(); }));
}

json NodeOf(client::RestClient& c, const std::string& name) {
  auto n = c.Get(res::kNodes, "", name);
  return n.ok() ? *n : json::object();
}

std::string ReadyOf(const json& node) {
  for (const auto& c : node.value("status", json::object()).value("conditions", json::array())) {
    if (c.value("type", "") == "Ready") return c.value("status", "");
  }
  return "";
}

bool HasTaint(const json& node, const std::string& key) {
  for (const auto& t : node.value("spec", json::object()).value("taints", json::array())) {
    if (t.value("key", "") == key && t.value("effect", "") == "NoExecute") return true;
  }
  return false;
}

TEST_F(LifecycleTest, NodeWhoseLeaseStopsIsTaintedAndItsPodsEvicted) {
  StartServer({"--node-monitor-period=300ms", "--node-monitor-grace-period=3s",
               "--default-unreachable-toleration-seconds=2"});
  ASSERT_TRUE(testing::CreateFakeNode(*client_, "alive").ok());
  ASSERT_TRUE(testing::CreateFakeNode(*client_, "lost").ok());
  std::atomic<bool> stop{false};
  std::thread heartbeat([&] {
    while (!stop) {
      (void)testing::RenewNodeLease(*client_, "alive");
      std::this_thread::sleep_for(300ms);
    }
  });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() {
      stop = true;
      t.join();
    }
  } join{stop, heartbeat};

  auto pod = [&](const std::string& name, const std::string& node, json tolerations = json()) {
    json p = testing::TestPod(name, {{"app", "web"}}, {}, node);
    if (!tolerations.is_null()) p["spec"]["tolerations"] = tolerations;
    ASSERT_TRUE(client_->Create(res::kPods, "default", p).ok());
  };
  pod("on-lost", "lost");
  pod("tolerates-forever", "lost",
      json::array({{{"key", "node.kubernetes.io/unreachable"}, {"operator", "Exists"}, {"effect", "NoExecute"}}}));
  pod("tolerates-long", "lost",
      json::array({{{"key", "node.kubernetes.io/unreachable"},
                    {"operator", "Exists"},
                    {"effect", "NoExecute"},
                    {"tolerationSeconds", 3600}}}));
  pod("on-alive", "alive");
  int ip = 60;
  for (const char* name : {"on-lost", "tolerates-forever", "tolerates-long", "on-alive"}) {
    ASSERT_TRUE(testing::MarkPodRunning(*client_, "default", name, "10.42.0." + std::to_string(ip++), true).ok());
  }
  json svc = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "web"}}},
              {"spec", {{"selector", {{"app", "web"}}}, {"ports", json::array({{{"port", 80}}})}}}};
  ASSERT_TRUE(client_->Create(res::kServices, "default", svc).ok());

  ASSERT_TRUE(Eventually([&] {
    json n = NodeOf(*client_, "lost");
    return ReadyOf(n) == "Unknown" && HasTaint(n, "node.kubernetes.io/unreachable");
  })) << NodeOf(*client_, "lost").dump() << server_->Log();
  // Pods of the lost node are no longer ready endpoints.
  ASSERT_TRUE(Eventually([&] {
    int ready = 0;
    for (const auto& s : ListItems(*client_, res::kEndpointSlices, "default", "kubernetes.io/service-name=web")) {
      for (const auto& ep : s.value("endpoints", json::array())) ready += ep["conditions"].value("ready", false);
    }
    return ready == 1;
  }));
  auto deleting = [&](const std::string& name) {
    auto p = client_->Get(res::kPods, "default", name);
    return !p.ok() || (*p)["metadata"].contains("deletionTimestamp");
  };
  ASSERT_TRUE(Eventually([&] { return deleting("on-lost"); })) << server_->Log();
  std::this_thread::sleep_for(1s);
  EXPECT_FALSE(deleting("tolerates-forever"));
  EXPECT_FALSE(deleting("tolerates-long"));
  EXPECT_FALSE(deleting("on-alive"));
  json alive = NodeOf(*client_, "alive");
  EXPECT_EQ(ReadyOf(alive), "True");
  EXPECT_FALSE(HasTaint(alive, "node.kubernetes.io/unreachable"));

  // The node coming back (lease renewed, Ready posted) loses its taint.
  ASSERT_TRUE(testing::RenewNodeLease(*client_, "lost").ok());
  json ready = {{"status",
                 {{"conditions",
                   json::array({{{"type", "Ready"},
                                 {"status", "True"},
                                 {"reason", "KubeletReady"},
                                 {"lastHeartbeatTime", EventTimestamp(std::chrono::system_clock::now())}}})}}}};
  ASSERT_TRUE(client_->Patch(res::kNodes, "", "lost", client::PatchType::kMerge, ready, "status").ok());
  ASSERT_TRUE(Eventually([&] { return !HasTaint(NodeOf(*client_, "lost"), "node.kubernetes.io/unreachable"); }));

  auto r = server_->Kubectl({"get", "events", "-A", "-o",
                             "custom-columns=REASON:.reason,OBJECT:.involvedObject.name,SOURCE:.source.component"});
  EXPECT_NE(r.stdout_text.find("NodeNotReady"), std::string::npos) << r.stdout_text << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("TaintManagerEviction   on-lost"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("nodelifecycle-controller"), std::string::npos) << r.stdout_text;
}

}  // namespace
}  // namespace kelpie::controllers
