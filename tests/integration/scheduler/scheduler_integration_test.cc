// The scheduler inside a real `kelpie server` (no kubelet: --register-node=
// false), with fake Node objects created through the API: pods get bound
// honoring resources, taints, selectors, spread and anti-affinity; pods that
// fit nowhere get kube-scheduler's Unschedulable condition and events, and
// are scheduled once a fitting node appears; preemption evicts a
// lower-priority pod and nominates the node.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "orchestrator/client/api_errors.h"
#include "orchestrator/client/rest_client.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace res = client::resources;
const client::ResourceRef kPriorityClasses{"scheduling.k8s.io", "v1", "priorityclasses", false};

template <typename F>
bool Eventually(F f, std::chrono::milliseconds limit = 30s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return f();
}

json NodeObject(const std::string& name, const std::string& cpu, json labels = json::object(),
                json taints = json::array()) {
  labels["kubernetes.io/hostname"] = name;
  json spec = json::object();
  if (!taints.empty()) spec["taints"] = taints;
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", name}, {"labels", labels}}},
          {"spec", spec},
          {"status",
           {{"capacity", {{"cpu", cpu}, {"memory", "8Gi"}, {"pods", "110"}}},
            {"allocatable", {{"cpu", cpu}, {"memory", "8Gi"}, {"pods", "110"}}},
            {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})}}}};
}

json PodObject(const std::string& name, const std::string& cpu, json labels = json::object(),
               json extra_spec = json::object()) {
  json spec = {{"containers", json::array({{{"name", "c"},
                                            {"image", "busybox"},
                                            {"resources", {{"requests", {{"cpu", cpu}}}}}}})}};
  for (auto& [k, v] : extra_spec.items()) spec[k] = v;
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "default"}, {"labels", labels}}},
          {"spec", spec}};
}

class SchedulerIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = testing::KelpieServer::Start(dir_.File("data"), testing::FreeTcpPort(), dir_.File("server.log"));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    auto c = client::RestClient::FromKubeconfig(server_->kubeconfig());
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }
  void TearDown() override {
    if (HasFailure() && server_) std::cerr << "--- server log (tail) ---\n" << LogTail() << "\n";
  }
  std::string LogTail() {
    std::string log = server_->Log();
    return log.size() > 6000 ? log.substr(log.size() - 6000) : log;
  }

  void CreateNode(const json& node) {
    auto r = client_->Create(res::kNodes, "", node);
    ASSERT_TRUE(r.ok()) << r.status();
    // Make sure status.allocatable is what we said, as a kubelet's status update would.
    json current = *r;
    if (current["status"].value("allocatable", json()) != node["status"]["allocatable"]) {
      current["status"] = node["status"];
      auto u = client_->UpdateStatus(res::kNodes, "", current);
      ASSERT_TRUE(u.ok()) << u.status();
    }
  }
  void CreatePod(const json& pod) {
    auto r = client_->Create(res::kPods, "default", pod);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  json GetPod(const std::string& name) {
    auto r = client_->Get(res::kPods, "default", name);
    return r.ok() ? *r : json();
  }
  std::string NodeOf(const std::string& name) {
    json p = GetPod(name);
    return p.is_object() ? p.value("spec", json::object()).value("nodeName", "") : "";
  }
  bool WaitBound(const std::string& name) {
    return Eventually([&] { return !NodeOf(name).empty(); });
  }
  json ScheduledCondition(const std::string& name) {
    json p = GetPod(name);
    if (!p.is_object()) return json();
    json status = p.value("status", json::object());
    for (const auto& c : status.value("conditions", json::array())) {
      if (c.value("type", "") == "PodScheduled") return c;
    }
    return json();
  }
  std::string UnschedulableMessage(const std::string& name) {
    json c = ScheduledCondition(name);
    if (!c.is_object() || c.value("status", "") != "False" || c.value("reason", "") != "Unschedulable") return "";
    return c.value("message", "");
  }
  // Events about pod `name` with `reason`.
  std::vector<json> Events(const std::string& name, const std::string& reason) {
    std::vector<json> out;
    auto list = client_->List(res::kEvents, "default");
    if (!list.ok()) return out;
    for (const auto& e : (*list)["items"]) {
      json involved = e.value("involvedObject", json::object());
      if (involved.value("name", "") == name && e.value("reason", "") == reason) out.push_back(e);
    }
    return out;
  }
  std::map<std::string, int> PodsPerNode(const std::vector<std::string>& pods) {
    std::map<std::string, int> out;
    for (const auto& p : pods) {
      std::string n = NodeOf(p);
      if (!n.empty()) ++out[n];
    }
    return out;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::KelpieServer> server_;
  std::unique_ptr<client::RestClient> client_;
};

TEST_F(SchedulerIntegrationTest, UnschedulableMessageThenScheduledWhenANodeFits) {
  json gpu_taint = json::array({{{"key", "dedicated"}, {"value", "gpu"}, {"effect", "NoSchedule"}}});
  CreateNode(NodeObject("small", "3"));
  CreateNode(NodeObject("gpu-1", "8", json::object(), gpu_taint));
  CreateNode(NodeObject("gpu-2", "8", json::object(), gpu_taint));
  // Two of small's three cpus taken by a pod of the same priority: it could
  // fit after an eviction, but there is nothing it may evict.
  CreatePod(PodObject("filler", "2"));
  ASSERT_TRUE(WaitBound("filler"));
  CreatePod(PodObject("big", "2"));
  const std::string want =
      "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: gpu}. "
      "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
      "2 Preemption is not helpful for scheduling.";
  ASSERT_TRUE(Eventually([&] { return !UnschedulableMessage("big").empty(); })) << GetPod("big").dump();
  EXPECT_EQ(UnschedulableMessage("big"), want);
  ASSERT_TRUE(Eventually([&] { return !Events("big", "FailedScheduling").empty(); }));
  json failed = Events("big", "FailedScheduling").front();
  EXPECT_EQ(failed.value("type", ""), "Warning");
  EXPECT_EQ(failed.value("message", ""), want);
  EXPECT_EQ(failed.value("source", json::object()).value("component", ""), "default-scheduler");
  EXPECT_TRUE(NodeOf("big").empty());

  // A node that fits appears: the pending pod is scheduled there.
  CreateNode(NodeObject("large", "4"));
  ASSERT_TRUE(WaitBound("big")) << GetPod("big").dump();
  EXPECT_EQ(NodeOf("big"), "large");
  EXPECT_EQ(ScheduledCondition("big").value("status", ""), "True");
  ASSERT_TRUE(Eventually([&] { return !Events("big", "Scheduled").empty(); }));
  EXPECT_EQ(Events("big", "Scheduled").front().value("message", ""), "Successfully assigned default/big to large");
}

TEST_F(SchedulerIntegrationTest, ResourcesAreNeverOvercommitted) {
  CreateNode(NodeObject("a", "2"));
  CreateNode(NodeObject("b", "2"));
  std::vector<std::string> pods;
  for (int i = 0; i < 6; ++i) {
    pods.push_back("p" + std::to_string(i));
    CreatePod(PodObject(pods.back(), "900m"));
  }
  ASSERT_TRUE(Eventually([&] {
    int bound = 0;
    for (const auto& p : pods) bound += NodeOf(p).empty() ? 0 : 1;
    return bound == 4;
  }));
  auto per_node = PodsPerNode(pods);
  EXPECT_EQ(per_node["a"], 2);
  EXPECT_EQ(per_node["b"], 2);
  // The two left over say why.
  int pending = 0;
  for (const auto& p : pods) {
    if (!NodeOf(p).empty()) continue;
    ++pending;
    EXPECT_TRUE(Eventually([&] { return !UnschedulableMessage(p).empty(); }));
    EXPECT_EQ(UnschedulableMessage(p).rfind("0/2 nodes are available: 2 Insufficient cpu.", 0), 0u)
        << UnschedulableMessage(p);
  }
  EXPECT_EQ(pending, 2);
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(PodsPerNode(pods).size(), 2u);
  // Deleting a bound pod frees room: a pending one takes it.
  std::string victim;
  for (const auto& p : pods) {
    if (NodeOf(p) == "a") victim = p;
  }
  client::DeleteOptions now;
  now.grace_period_seconds = 0;
  ASSERT_TRUE(client_->Delete(res::kPods, "default", victim, now).ok());
  pods.erase(std::find(pods.begin(), pods.end(), victim));
  ASSERT_TRUE(Eventually([&] { return PodsPerNode(pods)["a"] == 2; }));
}

TEST_F(SchedulerIntegrationTest, TaintsTolerationsSelectorsAndAffinity) {
  json taint = json::array({{{"key", "dedicated"}, {"value", "db"}, {"effect", "NoSchedule"}}});
  CreateNode(NodeObject("db-node", "4", {{"disk", "ssd"}}, taint));
  CreateNode(NodeObject("web-node", "4", {{"disk", "hdd"}}));
  // Without a toleration nothing goes to the tainted node.
  CreatePod(PodObject("plain", "100m", json::object(), {{"nodeSelector", {{"disk", "ssd"}}}}));
  CreatePod(PodObject("db", "100m", json::object(),
                      {{"nodeSelector", {{"disk", "ssd"}}},
                       {"tolerations", json::array({{{"key", "dedicated"}, {"operator", "Equal"},
                                                     {"value", "db"}, {"effect", "NoSchedule"}}})}}));
  CreatePod(PodObject("web", "100m", json::object(),
                      {{"affinity", json::parse(R"({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "NotIn",
                         "values": ["ssd"]}]}]}}})")}}));
  ASSERT_TRUE(WaitBound("db"));
  EXPECT_EQ(NodeOf("db"), "db-node");
  ASSERT_TRUE(WaitBound("web"));
  EXPECT_EQ(NodeOf("web"), "web-node");
  // The first attempt may have seen only the first node; the node added
  // after it moves the pod back for another attempt, which rewrites the
  // message with both nodes.
  const std::string expected =
      "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had "
      "untolerated taint {dedicated: db}. preemption: 0/2 nodes are available: 2 Preemption is not "
      "helpful for scheduling.";
  EXPECT_TRUE(Eventually([&] { return UnschedulableMessage("plain") == expected; })) << UnschedulableMessage("plain");
}

TEST_F(SchedulerIntegrationTest, SpreadAcrossZonesAndAntiAffinity) {
  for (const char* zone : {"z1", "z2", "z3"}) {
    for (int i = 0; i < 2; ++i) {
      CreateNode(NodeObject(std::string(zone) + "-" + std::to_string(i), "8", {{"topology.kubernetes.io/zone", zone}}));
    }
  }
  json spread = json::array({{{"maxSkew", 1},
                              {"topologyKey", "topology.kubernetes.io/zone"},
                              {"whenUnsatisfiable", "DoNotSchedule"},
                              {"labelSelector", {{"matchLabels", {{"app", "web"}}}}}}});
  std::vector<std::string> web;
  for (int i = 0; i < 6; ++i) {
    web.push_back("web-" + std::to_string(i));
    CreatePod(PodObject(web.back(), "100m", {{"app", "web"}}, {{"topologySpreadConstraints", spread}}));
    ASSERT_TRUE(WaitBound(web.back()));
  }
  std::map<std::string, int> per_zone;
  for (const auto& p : web) ++per_zone[NodeOf(p).substr(0, 2)];
  EXPECT_EQ(per_zone, (std::map<std::string, int>{{"z1", 2}, {"z2", 2}, {"z3", 2}}));

  json anti = json::parse(R"({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
      {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "topology.kubernetes.io/zone"}]}})");
  std::vector<std::string> db;
  for (int i = 0; i < 4; ++i) {
    db.push_back("db-" + std::to_string(i));
    CreatePod(PodObject(db.back(), "100m", {{"app", "db"}}, {{"affinity", anti}}));
  }
  ASSERT_TRUE(Eventually([&] {
    int bound = 0;
    for (const auto& p : db) bound += NodeOf(p).empty() ? 0 : 1;
    return bound == 3;
  }));
  std::set<std::string> zones;
  std::string pending;
  for (const auto& p : db) {
    if (NodeOf(p).empty()) {
      pending = p;
    } else {
      zones.insert(NodeOf(p).substr(0, 2));
    }
  }
  EXPECT_EQ(zones.size(), 3u) << "one replica per zone";
  ASSERT_TRUE(Eventually([&] { return !UnschedulableMessage(pending).empty(); }));
  EXPECT_EQ(UnschedulableMessage(pending).rfind("0/6 nodes are available: 6 node(s) didn't match pod anti-affinity rules.", 0), 0u)
      << UnschedulableMessage(pending);
}

TEST_F(SchedulerIntegrationTest, PreemptionEvictsALowerPriorityPod) {
  ASSERT_TRUE(client_->Create(kPriorityClasses, "", {{"apiVersion", "scheduling.k8s.io/v1"}, {"kind", "PriorityClass"},
                                                      {"metadata", {{"name", "low"}}}, {"value", 10}}).ok());
  ASSERT_TRUE(client_->Create(kPriorityClasses, "", {{"apiVersion", "scheduling.k8s.io/v1"}, {"kind", "PriorityClass"},
                                                      {"metadata", {{"name", "high"}}}, {"value", 1000}}).ok());
  CreateNode(NodeObject("only", "2"));
  CreatePod(PodObject("low-a", "1", json::object(), {{"priorityClassName", "low"}}));
  CreatePod(PodObject("low-b", "1", json::object(), {{"priorityClassName", "low"}}));
  ASSERT_TRUE(WaitBound("low-a"));
  ASSERT_TRUE(WaitBound("low-b"));
  CreatePod(PodObject("high", "1", json::object(), {{"priorityClassName", "high"}}));
  // One victim gets a graceful deletion; the preemptor is nominated.
  std::string victim;
  ASSERT_TRUE(Eventually([&] {
    for (const char* p : {"low-a", "low-b"}) {
      if (GetPod(p)["metadata"].contains("deletionTimestamp")) victim = p;
    }
    return !victim.empty();
  })) << GetPod("high").dump();
  ASSERT_TRUE(Eventually([&] { return GetPod("high").value("status", json::object()).value("nominatedNodeName", "") == "only"; }))
      << GetPod("high").dump();
  std::string survivor = victim == "low-a" ? "low-b" : "low-a";
  EXPECT_FALSE(GetPod(survivor)["metadata"].contains("deletionTimestamp")) << "only the fewest victims";
  EXPECT_TRUE(NodeOf("high").empty());
  // Play the kubelet: the victim's containers stopped, so it goes away.
  client::DeleteOptions now;
  now.grace_period_seconds = 0;
  ASSERT_TRUE(client_->Delete(res::kPods, "default", victim, now).ok());
  ASSERT_TRUE(WaitBound("high")) << GetPod("high").dump();
  EXPECT_EQ(NodeOf("high"), "only");
  EXPECT_FALSE(Events(victim, "Preempted").empty());
}

TEST_F(SchedulerIntegrationTest, OtherSchedulersPodsAreLeftAlone) {
  CreateNode(NodeObject("n", "4"));
  CreatePod(PodObject("mine", "100m"));
  CreatePod(PodObject("theirs", "100m", json::object(), {{"schedulerName", "other-scheduler"}}));
  ASSERT_TRUE(WaitBound("mine"));
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(NodeOf("theirs").empty());
  EXPECT_FALSE(ScheduledCondition("theirs").is_object());
  // Scheduler metrics are served by the API server.
  auto http = server_->AdminClient();
  ASSERT_TRUE(http.ok());
  auto r = (*http)->Do({"GET", "/metrics", {}, ""});
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->body.find("scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"}"),
            std::string::npos);
  EXPECT_NE(r->body.find("scheduler_pending_pods{queue=\"active\"}"), std::string::npos);
  EXPECT_NE(r->body.find("scheduler_pod_scheduling_sli_duration_seconds_bucket"), std::string::npos);
}

// `kelpie server` as users run it: its own node registered, a pod made
// with kubectl is bound to that node by the built-in scheduler.
TEST(SchedulerServerTest, KubectlPodLandsOnTheServersOwnNode) {
  testing::TempDir dir;
  auto server = testing::KelpieServer::Start(dir.File("data"), testing::FreeTcpPort(), dir.File("server.log"),
                                             {"--register-node=true", "--node-name=kelpie-local"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto run = (*server)->Kubectl({"run", "hello", "--image=busybox", "--restart=Never", "--", "sleep", "3600"});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  std::string node;
  EXPECT_TRUE(Eventually([&] {
    auto r = (*server)->Kubectl({"get", "pod", "hello", "-o", "jsonpath={.spec.nodeName}"});
    node = r.stdout_text;
    return r.exit_code == 0 && !node.empty();
  })) << (*server)->Log();
  EXPECT_EQ(node, "kelpie-local");
  std::string messages;
  EXPECT_TRUE(Eventually([&] {
    messages = (*server)->Kubectl({"get", "events", "-o", "jsonpath={.items[*].message}"}).stdout_text;
    return messages.find("Successfully assigned default/hello to kelpie-local") != std::string::npos;
  })) << messages;
}

}  // namespace
}  // namespace kelpie
