// Each plugin against the cases kube-scheduler's own tests and docs use.
#include "orchestrator/scheduler/plugins.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/unit/scheduler/test_objects.h"

namespace kelpie::scheduler {
namespace {

using nlohmann::json;
using testing::BoundPod;
using testing::Node;
using testing::NodeFrom;
using testing::NodeJson;
using testing::Pod;
using testing::PodFrom;
using testing::PodJson;

// A small cluster in a cache, and helpers to run one plugin's stages.
class PluginTest : public ::testing::Test {
 protected:
  SchedulerCache cache;

  void AddNode(json node) { cache.AddOrUpdateNode(NodeFrom(node)); }
  void AddPod(json pod, const std::string& node) { cache.AddOrUpdatePod(BoundPod(PodFrom(pod), node)); }

  PluginStatus Filter(const Plugin& plugin, const PodInfo& pod, const std::string& node) {
    auto lock = cache.ReadLock();
    ClusterView view{cache, cache.Nodes()};
    CycleState state;
    PluginStatus pre = plugin.PreFilter(state, pod, view);
    if (!pre.ok()) return pre;
    return plugin.Filter(state, pod, *cache.FindNode(node));
  }

  // Normalized scores of every node, by name.
  std::map<std::string, int64_t> Scores(const Plugin& plugin, const PodInfo& pod) {
    auto lock = cache.ReadLock();
    ClusterView view{cache, cache.Nodes()};
    std::vector<const NodeState*> nodes(cache.Nodes().begin(), cache.Nodes().end());
    CycleState state;
    plugin.PreScore(state, pod, view, nodes);
    std::vector<int64_t> scores;
    for (const NodeState* n : nodes) scores.push_back(plugin.Score(state, pod, *n));
    plugin.NormalizeScore(state, pod, scores);
    std::map<std::string, int64_t> out;
    for (size_t i = 0; i < nodes.size(); ++i) out[nodes[i]->name()] = scores[i];
    return out;
  }

  static json WithLabels(json obj, json labels) {
    for (auto& [k, v] : labels.items()) obj["metadata"]["labels"][k] = v;
    return obj;
  }
  static json WithSpec(json pod, const json& spec) {
    for (auto& [k, v] : spec.items()) pod["spec"][k] = v;
    return pod;
  }
};

TEST_F(PluginTest, NodeUnschedulable) {
  json cordoned = NodeJson("n1");
  cordoned["spec"]["unschedulable"] = true;
  AddNode(cordoned);
  auto plugin = NewNodeUnschedulable();
  PluginStatus s = Filter(*plugin, Pod("p"), "n1");
  EXPECT_EQ(s.code, PluginStatus::Code::kUnschedulableAndUnresolvable);
  EXPECT_EQ(s.reasons.at(0), "node(s) were unschedulable");
  json tolerant = WithSpec(PodJson("t"), {{"tolerations", {{{"key", "node.kubernetes.io/unschedulable"},
                                                             {"operator", "Exists"}, {"effect", "NoSchedule"}}}}});
  EXPECT_TRUE(Filter(*plugin, PodFrom(tolerant), "n1").ok());
}

TEST_F(PluginTest, NodeName) {
  AddNode(NodeJson("n1"));
  auto plugin = NewNodeName();
  EXPECT_TRUE(Filter(*plugin, Pod("p"), "n1").ok());
  EXPECT_TRUE(Filter(*plugin, BoundPod(Pod("p"), "n1"), "n1").ok());
  EXPECT_EQ(Filter(*plugin, BoundPod(Pod("p"), "n2"), "n1").reasons.at(0),
            "node(s) didn't match the requested node name");
}

TEST_F(PluginTest, NodeResourcesFitFilter) {
  AddNode(NodeJson("n1", "2", "4Gi", "3"));
  json gpu_node = NodeJson("g1", "2", "4Gi", "110");
  gpu_node["status"]["allocatable"]["example.com/gpu"] = "2";
  AddNode(gpu_node);
  AddPod(PodJson("a", "1500m", "1Gi"), "n1");
  auto plugin = NewNodeResourcesFit(ScoringStrategy::kLeastAllocated, {{"cpu", 1}, {"memory", 1}});
  EXPECT_TRUE(Filter(*plugin, Pod("fits", "500m", "3Gi"), "n1").ok());
  PluginStatus s = Filter(*plugin, Pod("big", "600m", "3500Mi"), "n1");
  EXPECT_EQ(s.code, PluginStatus::Code::kUnschedulable);
  EXPECT_EQ(s.reasons, (std::vector<std::string>{"Insufficient cpu", "Insufficient memory"}));
  // More than the whole node: preemption could not help.
  EXPECT_EQ(Filter(*plugin, Pod("huge", "3"), "n1").code, PluginStatus::Code::kUnschedulableAndUnresolvable);
  // Best-effort pods only count against the pod limit.
  AddPod(PodJson("b"), "n1");
  AddPod(PodJson("c"), "n1");
  EXPECT_EQ(Filter(*plugin, Pod("d"), "n1").reasons, std::vector<std::string>{"Too many pods"});
  // Extended resources.
  json wants_gpu = PodJson("gp");
  wants_gpu["spec"]["containers"][0]["resources"]["limits"] = {{"example.com/gpu", "2"}};
  EXPECT_TRUE(Filter(*plugin, PodFrom(wants_gpu), "g1").ok());
  // n1 is also full: every failed resource is a reason of its own.
  EXPECT_EQ(Filter(*plugin, PodFrom(wants_gpu), "n1").reasons,
            (std::vector<std::string>{"Too many pods", "Insufficient example.com/gpu"}));
  json ephemeral = PodJson("e");
  ephemeral["spec"]["containers"][0]["resources"]["requests"] = {{"ephemeral-storage", "1Gi"}};
  EXPECT_EQ(Filter(*plugin, PodFrom(ephemeral), "g1").reasons,
            std::vector<std::string>{"Insufficient ephemeral-storage"});
}

TEST_F(PluginTest, NodeResourcesFitLeastAndMostAllocated) {
  // kube-scheduler's documented example: node 4000m/10000 bytes... scaled:
  // n1 has 1 of 4 cpu used, n2 3 of 4; a 1-cpu pod.
  AddNode(NodeJson("n1", "4", "8Gi"));
  AddNode(NodeJson("n2", "4", "8Gi"));
  AddPod(PodJson("a", "1", "2Gi"), "n1");
  AddPod(PodJson("b", "3", "6Gi"), "n2");
  PodInfo pod = Pod("p", "1", "2Gi");
  auto least = Scores(*NewNodeResourcesFit(ScoringStrategy::kLeastAllocated, {{"cpu", 1}, {"memory", 1}}), pod);
  EXPECT_EQ(least["n1"], 50);  // (4-2)/4 for both resources
  EXPECT_EQ(least["n2"], 0);
  auto most = Scores(*NewNodeResourcesFit(ScoringStrategy::kMostAllocated, {{"cpu", 1}, {"memory", 1}}), pod);
  EXPECT_EQ(most["n1"], 50);
  EXPECT_EQ(most["n2"], 100);
}

TEST_F(PluginTest, BalancedAllocation) {
  AddNode(NodeJson("n1", "4", "4Gi"));
  AddNode(NodeJson("n2", "4", "4Gi"));
  AddPod(PodJson("a", "2", "0"), "n2");  // n2 cpu-heavy already
  PodInfo pod = Pod("p", "1", "1Gi");
  auto s = Scores(*NewBalancedAllocation(), pod);
  EXPECT_EQ(s["n1"], 100);  // 25% cpu, 25% memory
  EXPECT_EQ(s["n2"], 75);   // 75% cpu vs 25% memory: std 0.25
}

TEST_F(PluginTest, NodeAffinityAndSelector) {
  AddNode(WithLabels(NodeJson("a"), {{"zone", "z1"}, {"disk", "ssd"}}));
  AddNode(WithLabels(NodeJson("b"), {{"zone", "z2"}}));
  auto plugin = NewNodeAffinity();
  PodInfo selector = PodFrom(WithSpec(PodJson("p"), {{"nodeSelector", {{"disk", "ssd"}}}}));
  EXPECT_TRUE(Filter(*plugin, selector, "a").ok());
  PluginStatus s = Filter(*plugin, selector, "b");
  EXPECT_EQ(s.code, PluginStatus::Code::kUnschedulableAndUnresolvable);
  EXPECT_EQ(s.reasons.at(0), "node(s) didn't match Pod's node affinity/selector");
  PodInfo required = PodFrom(WithSpec(PodJson("p"), json::parse(R"({"affinity": {"nodeAffinity": {
      "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z1"]}]}]}}}})")));
  EXPECT_FALSE(Filter(*plugin, required, "a").ok());
  EXPECT_TRUE(Filter(*plugin, required, "b").ok());
  PodInfo preferred = PodFrom(WithSpec(PodJson("p"), json::parse(R"({"affinity": {"nodeAffinity": {
      "preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 2, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}},
        {"weight": 1, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}]}}})")));
  auto scores = Scores(*plugin, preferred);
  EXPECT_EQ(scores["b"], 100);
  EXPECT_EQ(scores["a"], 50);
}

TEST_F(PluginTest, TaintToleration) {
  json tainted = NodeJson("t");
  tainted["spec"]["taints"] = json::parse(R"([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])");
  AddNode(tainted);
  json soft = NodeJson("s");
  soft["spec"]["taints"] = json::parse(R"([{"key": "spot", "value": "true", "effect": "PreferNoSchedule"}])");
  AddNode(soft);
  AddNode(NodeJson("clean"));
  auto plugin = NewTaintToleration();
  PluginStatus s = Filter(*plugin, Pod("p"), "t");
  EXPECT_EQ(s.code, PluginStatus::Code::kUnschedulableAndUnresolvable);
  EXPECT_EQ(s.reasons.at(0), "node(s) had untolerated taint {dedicated: gpu}");
  auto tol = [&](json t) { return PodFrom(WithSpec(PodJson("p"), {{"tolerations", json::array({t})}})); };
  EXPECT_TRUE(Filter(*plugin, tol({{"key", "dedicated"}, {"operator", "Equal"}, {"value", "gpu"}}), "t").ok());
  EXPECT_TRUE(Filter(*plugin, tol({{"key", "dedicated"}, {"operator", "Exists"}, {"effect", "NoSchedule"}}), "t").ok());
  EXPECT_TRUE(Filter(*plugin, tol({{"operator", "Exists"}}), "t").ok()) << "empty key + Exists tolerates all";
  EXPECT_FALSE(Filter(*plugin, tol({{"key", "dedicated"}, {"value", "cpu"}}), "t").ok());
  EXPECT_FALSE(Filter(*plugin, tol({{"key", "dedicated"}, {"operator", "Exists"}, {"effect", "NoExecute"}}), "t").ok());
  // PreferNoSchedule only lowers the score.
  EXPECT_TRUE(Filter(*plugin, Pod("p"), "s").ok());
  auto scores = Scores(*plugin, Pod("p"));
  EXPECT_EQ(scores["clean"], 100);
  EXPECT_EQ(scores["t"], 100);
  EXPECT_EQ(scores["s"], 0);
  auto tolerated = Scores(*plugin, tol({{"key", "spot"}, {"operator", "Exists"}, {"effect", "PreferNoSchedule"}}));
  EXPECT_EQ(tolerated["s"], 100);
}

TEST_F(PluginTest, NodePorts) {
  AddNode(NodeJson("n1"));
  json web = PodJson("web");
  web["spec"]["containers"][0]["ports"] = json::parse(R"([{"containerPort": 80, "hostPort": 8080}])");
  AddPod(web, "n1");
  auto plugin = NewNodePorts();
  json same = PodJson("p");
  same["spec"]["containers"][0]["ports"] = json::parse(R"([{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"}])");
  PluginStatus s = Filter(*plugin, PodFrom(same), "n1");
  EXPECT_EQ(s.reasons.at(0), "node(s) didn't have free ports for the requested pod ports");
  json udp = PodJson("p");
  udp["spec"]["containers"][0]["ports"] = json::parse(R"([{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}])");
  EXPECT_TRUE(Filter(*plugin, PodFrom(udp), "n1").ok());
  json other = PodJson("p");
  other["spec"]["containers"][0]["ports"] = json::parse(R"([{"containerPort": 80, "hostPort": 8081}])");
  EXPECT_TRUE(Filter(*plugin, PodFrom(other), "n1").ok());
  HostPort a{"10.0.0.1", "TCP", 80}, b{"10.0.0.2", "TCP", 80};
  EXPECT_FALSE(HostPortsConflict(a, b));
}

// Three zones, two nodes each; pods labelled app=web spread with maxSkew 1.
class SpreadTest : public PluginTest {
 protected:
  void SetUp() override {
    for (int z = 1; z <= 3; ++z) {
      for (int n = 1; n <= 2; ++n) {
        std::string name = "z" + std::to_string(z) + "n" + std::to_string(n);
        AddNode(WithLabels(NodeJson(name), {{"topology.kubernetes.io/zone", "z" + std::to_string(z)}}));
      }
    }
  }
  json WebPod(const std::string& name, const std::string& when = "DoNotSchedule", const std::string& key =
                                                                                          "topology.kubernetes.io/zone") {
    json p = WithLabels(PodJson(name), {{"app", "web"}});
    p["spec"]["topologySpreadConstraints"] = json::array(
        {{{"maxSkew", 1}, {"topologyKey", key}, {"whenUnsatisfiable", when},
          {"labelSelector", {{"matchLabels", {{"app", "web"}}}}}}});
    return p;
  }
};

TEST_F(SpreadTest, DoNotScheduleKeepsSkew) {
  AddPod(WebPod("a"), "z1n1");
  AddPod(WebPod("b"), "z2n1");
  auto plugin = NewPodTopologySpread(true);
  PodInfo pod = PodFrom(WebPod("c"));
  // z1 and z2 have 1, z3 has 0: only z3 keeps the skew at 1.
  PluginStatus s = Filter(*plugin, pod, "z1n2");
  EXPECT_EQ(s.code, PluginStatus::Code::kUnschedulable);
  EXPECT_EQ(s.reasons.at(0), "node(s) didn't match pod topology spread constraints");
  EXPECT_TRUE(Filter(*plugin, pod, "z3n1").ok());
  EXPECT_TRUE(Filter(*plugin, pod, "z3n2").ok());
  // A node without the zone label cannot take part.
  AddNode(NodeJson("nolabel"));
  EXPECT_EQ(Filter(*plugin, pod, "nolabel").code, PluginStatus::Code::kUnschedulableAndUnresolvable);
  // Pods in other namespaces or without the label do not count.
  json other = WithLabels(PodJson("x"), {{"app", "web"}});
  other["metadata"]["namespace"] = "other";
  AddPod(other, "z3n1");
  EXPECT_TRUE(Filter(*plugin, pod, "z3n2").ok());
}

TEST_F(SpreadTest, ScheduleAnywayPrefersEmptierDomains) {
  AddPod(WebPod("a"), "z1n1");
  AddPod(WebPod("b"), "z1n2");
  AddPod(WebPod("c"), "z2n1");
  auto plugin = NewPodTopologySpread(true);
  PodInfo pod = PodFrom(WebPod("d", "ScheduleAnyway"));
  EXPECT_TRUE(Filter(*plugin, pod, "z1n1").ok()) << "soft constraints never filter";
  auto s = Scores(*plugin, pod);
  EXPECT_EQ(s["z3n1"], 100);
  EXPECT_GT(s["z2n1"], s["z1n1"]);
  EXPECT_EQ(s["z1n1"], s["z1n2"]);
}

TEST_F(SpreadTest, DefaultConstraintsSpreadAServicesPods) {
  cache.SetWorkloadSelector("default", "services/web", LabelSelector{{{"app", SelectorRequirement::Op::kIn, {"web"}}}});
  AddPod(WithLabels(PodJson("a"), {{"app", "web"}}), "z1n1");
  AddPod(WithLabels(PodJson("b"), {{"app", "web"}}), "z1n2");
  PodInfo pod = PodFrom(WithLabels(PodJson("c"), {{"app", "web"}}));
  auto s = Scores(*NewPodTopologySpread(true), pod);
  EXPECT_GT(s["z2n1"], s["z1n1"]) << "fewer of the Service's pods in zone 2";
  EXPECT_EQ(s["z2n1"], s["z3n2"]);
  // Off by configuration, or for pods no workload selects: no preference.
  auto off = Scores(*NewPodTopologySpread(false), pod);
  EXPECT_EQ(off["z2n1"], off["z1n1"]);
  auto unselected = Scores(*NewPodTopologySpread(true), Pod("lonely"));
  EXPECT_EQ(unselected["z2n1"], unselected["z1n1"]);
}

TEST_F(PluginTest, InterPodAntiAffinityKeepsReplicasApart) {
  AddNode(WithLabels(NodeJson("n1"), {{"zone", "a"}}));
  AddNode(WithLabels(NodeJson("n2"), {{"zone", "a"}}));
  AddNode(WithLabels(NodeJson("n3"), {{"zone", "b"}}));
  json anti = json::parse(R"({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
      {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}})");
  AddPod(WithSpec(WithLabels(PodJson("db-0"), {{"app", "db"}}), {{"affinity", anti}}), "n1");
  auto plugin = NewInterPodAffinity();
  PodInfo replica = PodFrom(WithSpec(WithLabels(PodJson("db-1"), {{"app", "db"}}), {{"affinity", anti}}));
  PluginStatus s = Filter(*plugin, replica, "n1");
  EXPECT_EQ(s.code, PluginStatus::Code::kUnschedulable);
  EXPECT_EQ(s.reasons.at(0), "node(s) didn't match pod anti-affinity rules");
  EXPECT_TRUE(Filter(*plugin, replica, "n2").ok());
  // The existing pod's anti-affinity also rejects a pod without rules of its own.
  PodInfo plain = PodFrom(WithLabels(PodJson("db-x"), {{"app", "db"}}));
  EXPECT_EQ(Filter(*plugin, plain, "n1").reasons.at(0), "node(s) didn't satisfy existing pods anti-affinity rules");
  EXPECT_TRUE(Filter(*plugin, Pod("other"), "n1").ok());
}

TEST_F(PluginTest, InterPodAffinityRequiredAndPreferred) {
  AddNode(WithLabels(NodeJson("n1"), {{"zone", "a"}}));
  AddNode(WithLabels(NodeJson("n2"), {{"zone", "b"}}));
  AddNode(WithLabels(NodeJson("n3"), {{"zone", "b"}}));
  AddPod(WithLabels(PodJson("cache"), {{"app", "cache"}}), "n2");
  auto plugin = NewInterPodAffinity();
  PodInfo near = PodFrom(WithSpec(PodJson("web"), {{"affinity", json::parse(R"({"podAffinity": {
      "requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}]}})")}}));
  PluginStatus s = Filter(*plugin, near, "n1");
  EXPECT_EQ(s.code, PluginStatus::Code::kUnschedulableAndUnresolvable);
  EXPECT_EQ(s.reasons.at(0), "node(s) didn't match pod affinity rules");
  EXPECT_TRUE(Filter(*plugin, near, "n3").ok()) << "same zone as the cache pod";
  // The first pod of a group matching its own affinity may go anywhere.
  PodInfo self = PodFrom(WithSpec(WithLabels(PodJson("g-0"), {{"app", "g"}}), {{"affinity", json::parse(R"({"podAffinity": {
      "requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "g"}}, "topologyKey": "zone"}]}})")}}));
  EXPECT_TRUE(Filter(*plugin, self, "n1").ok());
  PodInfo prefer = PodFrom(WithSpec(PodJson("web"), {{"affinity", json::parse(R"({"podAffinity": {
      "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm":
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}}]}})")}}));
  auto scores = Scores(*plugin, prefer);
  EXPECT_EQ(scores["n2"], 100);
  EXPECT_EQ(scores["n3"], 100);
  EXPECT_EQ(scores["n1"], 0);
}

TEST_F(PluginTest, InterPodAffinityNamespaceSelector) {
  AddNode(NodeJson("n1"));
  cache.SetNamespaceLabels("team-a", {{"team", "a"}});
  json other = WithLabels(PodJson("x"), {{"app", "db"}});
  other["metadata"]["namespace"] = "team-a";
  AddPod(other, "n1");
  auto plugin = NewInterPodAffinity();
  PodInfo pod = PodFrom(WithSpec(PodJson("p"), {{"affinity", json::parse(R"({"podAntiAffinity": {
      "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "db"}},
        "namespaceSelector": {"matchLabels": {"team": "a"}}, "topologyKey": "kubernetes.io/hostname"}]}})")}}));
  EXPECT_FALSE(Filter(*plugin, pod, "n1").ok());
}

TEST_F(PluginTest, ImageLocality) {
  json with_image = NodeJson("has");
  with_image["status"]["images"] = json::parse(
      R"([{"names": ["docker.io/library/big:1"], "sizeBytes": 524288000}])");  // 500 MiB
  AddNode(with_image);
  AddNode(NodeJson("lacks"));
  json pod = PodJson("p");
  pod["spec"]["containers"][0]["image"] = "big:1";
  auto s = Scores(*NewImageLocality(), PodFrom(pod));
  // 500 MiB on 1 of 2 nodes: 250 MiB effective, scaled between 23 MiB and 1000 MiB.
  EXPECT_EQ(s["has"], 100 * (250 - 23) / (1000 - 23));
  EXPECT_EQ(s["lacks"], 0);
}

TEST(PluginSetTest, ConfigValidationAndDisabledPlugins) {
  SchedulerConfig config;
  EXPECT_TRUE(config.Validate().ok());
  config.disabled_plugins = {"ImageLocality"};
  auto plugins = BuildPlugins(config);
  for (const auto& p : plugins) EXPECT_NE(p->Name(), "ImageLocality");
  EXPECT_EQ(plugins.size(), 9u);
  config.score_weights["Nope"] = 1;
  EXPECT_FALSE(config.Validate().ok());
  SchedulerConfig negative;
  negative.score_weights["NodeAffinity"] = -1;
  EXPECT_FALSE(negative.Validate().ok());
}

}  // namespace
}  // namespace kelpie::scheduler
