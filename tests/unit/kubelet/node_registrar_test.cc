// The node registrar against an in-memory API (a fake of the four REST
// calls it makes; the real API server path is covered by the agent's
// integration test).
#include "orchestrator/kubelet/node_registrar.h"

#include <gtest/gtest.h>

#include <map>

namespace kelpie::kubelet {
namespace {

using nlohmann::json;

class FakeNodeApi : public NodeApi {
 public:
  absl::StatusOr<json> GetNode(const std::string& name) override {
    auto it = nodes.find(name);
    if (it == nodes.end()) return absl::NotFoundError("node");
    return it->second;
  }
  absl::StatusOr<json> CreateNode(const json& node) override {
    std::string name = node["metadata"]["name"];
    if (nodes.count(name)) return absl::AlreadyExistsError("node");
    json stored = node;
    stored["metadata"]["uid"] = "uid-" + name;
    nodes[name] = stored;
    return stored;
  }
  absl::StatusOr<json> PatchNode(const std::string& name, const json& patch) override {
    auto it = nodes.find(name);
    if (it == nodes.end()) return absl::NotFoundError("node");
    it->second.merge_patch(patch);
    return it->second;
  }
  absl::StatusOr<json> PatchNodeStatus(const std::string& name, const json& patch) override {
    ++status_posts;
    json only_status = {{"status", patch["status"]}};
    return PatchNode(name, only_status);
  }
  absl::StatusOr<json> GetLease(const std::string& ns, const std::string& name) override {
    auto it = leases.find(ns + "/" + name);
    if (it == leases.end()) return absl::NotFoundError("lease");
    return it->second;
  }
  absl::StatusOr<json> CreateLease(const json& lease) override {
    std::string key = lease["metadata"].value("namespace", "") + "/" + lease["metadata"].value("name", "");
    json stored = lease;
    stored["metadata"]["resourceVersion"] = "1";
    leases[key] = stored;
    return stored;
  }
  absl::StatusOr<json> UpdateLease(const json& lease) override {
    std::string key = lease["metadata"].value("namespace", "") + "/" + lease["metadata"].value("name", "");
    auto it = leases.find(key);
    if (it == leases.end()) return absl::NotFoundError("lease");
    if (it->second["metadata"]["resourceVersion"] != lease["metadata"]["resourceVersion"]) {
      return absl::FailedPreconditionError("conflict");
    }
    json stored = lease;
    stored["metadata"]["resourceVersion"] =
        std::to_string(std::stoi(it->second["metadata"]["resourceVersion"].get<std::string>()) + 1);
    it->second = stored;
    ++lease_updates;
    return stored;
  }

  std::map<std::string, json> nodes;
  std::map<std::string, json> leases;
  int status_posts = 0;
  int lease_updates = 0;
};

NodeFacts Facts() {
  NodeFacts facts;
  facts.hostname = "worker-1";
  facts.cpu_millicores = 2000;
  facts.memory_bytes = 8LL << 30;
  facts.ephemeral_storage_bytes = 100LL << 30;
  facts.internal_ip = "192.0.2.10";
  facts.architecture = "amd64";
  return facts;
}

json Condition(const json& node, const std::string& type) {
  for (const auto& c : node["status"]["conditions"]) {
    if (c["type"] == type) return c;
  }
  return json();
}

TEST(NodeRegistrarTest, RegistersWithConditionsAndKeepsOthersLabels) {
  FakeNodeApi api;
  NodeRegistrarOptions options;
  options.settings.name = "worker-1";
  options.settings.pod_cidr = "10.42.1.0/24";
  NodeRegistrar registrar(api, Facts(), options);
  ASSERT_TRUE(registrar.Register().ok());
  json node = api.nodes["worker-1"];
  EXPECT_EQ(node["status"]["capacity"]["cpu"], "2");
  EXPECT_EQ(node["spec"]["podCIDR"], "10.42.1.0/24");
  EXPECT_EQ(Condition(node, "Ready")["status"], "True");
  EXPECT_EQ(Condition(node, "Ready")["reason"], "KubeletReady");
  EXPECT_EQ(Condition(node, "MemoryPressure")["status"], "False");
  EXPECT_EQ(Condition(node, "DiskPressure")["status"], "False");
  EXPECT_EQ(Condition(node, "PIDPressure")["status"], "False");

  // A label a user added survives re-registration (an agent restart).
  api.nodes["worker-1"]["metadata"]["labels"]["team"] = "blue";
  NodeRegistrar again(api, Facts(), options);
  ASSERT_TRUE(again.Register().ok());
  EXPECT_EQ(api.nodes["worker-1"]["metadata"]["labels"]["team"], "blue");
  EXPECT_EQ(api.nodes["worker-1"]["metadata"]["labels"]["kubernetes.io/hostname"], "worker-1");
}

TEST(NodeRegistrarTest, ReadinessFlipsMoveOnlyTheirTransitionTime) {
  FakeNodeApi api;
  bool ready = true;
  NodeRegistrarOptions options;
  options.settings.name = "worker-1";
  options.readiness = [&ready] {
    NodeReadiness r;
    if (!ready) r = {false, "KubeletNotReady", "container runtime is down"};
    return r;
  };
  NodeRegistrar registrar(api, Facts(), options);
  ASSERT_TRUE(registrar.Register().ok());
  // Pretend the conditions were posted long ago.
  for (auto& c : api.nodes["worker-1"]["status"]["conditions"]) c["lastTransitionTime"] = "2020-01-01T00:00:00Z";
  ready = false;
  ASSERT_TRUE(registrar.PostStatus().ok());
  json node = api.nodes["worker-1"];
  EXPECT_EQ(Condition(node, "Ready")["status"], "False");
  EXPECT_EQ(Condition(node, "Ready")["reason"], "KubeletNotReady");
  EXPECT_NE(Condition(node, "Ready")["lastTransitionTime"], "2020-01-01T00:00:00Z");
  EXPECT_EQ(Condition(node, "MemoryPressure")["lastTransitionTime"], "2020-01-01T00:00:00Z");
}

TEST(NodeRegistrarTest, LeaseIsCreatedOwnedByTheNodeThenRenewed) {
  FakeNodeApi api;
  NodeRegistrarOptions options;
  options.settings.name = "worker-1";
  NodeRegistrar registrar(api, Facts(), options);
  ASSERT_TRUE(registrar.Register().ok());
  ASSERT_TRUE(registrar.RenewLease().ok());
  json lease = api.leases["kube-node-lease/worker-1"];
  EXPECT_EQ(lease["spec"]["holderIdentity"], "worker-1");
  EXPECT_EQ(lease["spec"]["leaseDurationSeconds"], 40);
  EXPECT_EQ(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
  EXPECT_EQ(lease["metadata"]["ownerReferences"][0]["uid"], "uid-worker-1");
  std::string first = lease["spec"]["renewTime"];
  EXPECT_EQ(first.size(), 27u);  // 2026-11-28T19:22:01.123456Z
  ASSERT_TRUE(registrar.RenewLease().ok());
  EXPECT_EQ(api.lease_updates, 1);
  EXPECT_EQ(api.leases["kube-node-lease/worker-1"]["metadata"]["resourceVersion"], "2");
}

}  // namespace
}  // namespace kelpie::kubelet
