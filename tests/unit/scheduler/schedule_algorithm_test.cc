#include "orchestrator/scheduler/schedule_algorithm.h"

#include <gtest/gtest.h>

#include <set>

#include <nlohmann/json.hpp>

#include "orchestrator/scheduler/plugins.h"
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

TEST(NumFeasibleNodesToFindTest, KubeSchedulerFormula) {
  EXPECT_EQ(NumFeasibleNodesToFind(0, 10), 10);
  EXPECT_EQ(NumFeasibleNodesToFind(0, 99), 99);
  EXPECT_EQ(NumFeasibleNodesToFind(0, 100), 100);   // 50% of 100 = 50, at least 100
  EXPECT_EQ(NumFeasibleNodesToFind(0, 1000), 420);  // 50 - 8 = 42%
  EXPECT_EQ(NumFeasibleNodesToFind(0, 5000), 500);  // 50 - 40 = 10%
  EXPECT_EQ(NumFeasibleNodesToFind(0, 6000), 300);  // 50 - 48 = 2% -> at least 5%
  EXPECT_EQ(NumFeasibleNodesToFind(30, 1000), 300);
  EXPECT_EQ(NumFeasibleNodesToFind(1, 1000), 100);
  EXPECT_EQ(NumFeasibleNodesToFind(100, 5000), 5000);
}

TEST(FitErrorMessageTest, KubeSchedulerForm) {
  Diagnosis d;
  d.node_statuses["a"] = PluginStatus::Unschedulable("Insufficient cpu");
  d.node_statuses["b"] = PluginStatus::Unresolvable("node(s) had untolerated taint {node-role: master}");
  d.node_statuses["c"] = PluginStatus::Unresolvable("node(s) had untolerated taint {node-role: master}");
  EXPECT_EQ(FitErrorMessage(3, d),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role: master}.");
  // Several reasons on one node are each counted; the list sorts as strings.
  Diagnosis m;
  m.node_statuses["a"] = PluginStatus{PluginStatus::Code::kUnschedulable, {"Insufficient cpu", "Insufficient memory"}};
  m.node_statuses["b"] = PluginStatus::Unschedulable("Insufficient memory");
  m.post_filter_message =
      "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.";
  EXPECT_EQ(FitErrorMessage(2, m),
            "0/2 nodes are available: 1 Insufficient cpu, 2 Insufficient memory. preemption: 0/2 nodes are "
            "available: 2 No preemption victims found for incoming pod.");
}

class AlgorithmTest : public ::testing::Test {
 protected:
  SchedulerCache cache;
  SchedulerConfig config;
};

TEST_F(AlgorithmTest, UnschedulableDiagnosisNamesEveryNode) {
  cache.AddOrUpdateNode(Node("small", "1"));
  json tainted = NodeJson("tainted", "8");
  tainted["spec"]["taints"] = json::parse(R"([{"key": "node-role", "value": "master", "effect": "NoSchedule"}])");
  cache.AddOrUpdateNode(NodeFrom(tainted));
  tainted["metadata"]["name"] = "tainted2";
  cache.AddOrUpdateNode(NodeFrom(tainted));
  ScheduleAlgorithm algorithm(config, BuildPlugins(config));
  ScheduleOutcome out = algorithm.Schedule(Pod("p", "2"), cache);
  ASSERT_EQ(out.kind, ScheduleOutcome::Kind::kUnschedulable);
  EXPECT_EQ(FitErrorMessage(out.num_all_nodes, out.diagnosis),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role: master}.");
}

TEST_F(AlgorithmTest, NoNodes) {
  ScheduleAlgorithm algorithm(config, BuildPlugins(config));
  EXPECT_EQ(algorithm.Schedule(Pod("p"), cache).kind, ScheduleOutcome::Kind::kNoNodes);
}

TEST_F(AlgorithmTest, LargeClusterEvaluatesOnlyAShareAndRotates) {
  for (int i = 0; i < 1000; ++i) cache.AddOrUpdateNode(Node("n" + std::to_string(i)));
  config.parallelism = 2;
  ScheduleAlgorithm algorithm(config, BuildPlugins(config));
  ScheduleOutcome first = algorithm.Schedule(Pod("a", "100m"), cache);
  ASSERT_EQ(first.kind, ScheduleOutcome::Kind::kScheduled);
  EXPECT_EQ(first.feasible_nodes, 420);
  EXPECT_EQ(first.evaluated_nodes, 420);
  // The next attempt starts where this one stopped: a different window.
  ScheduleOutcome second = algorithm.Schedule(Pod("b", "100m"), cache);
  EXPECT_EQ(second.feasible_nodes, 420);
  EXPECT_NE(first.node, second.node);
}

TEST_F(AlgorithmTest, ParallelFiltersGiveTheSameAnswerAsSerial) {
  for (int i = 0; i < 500; ++i) {
    json n = NodeJson("n" + std::to_string(i), i % 3 == 0 ? "1" : "4");
    if (i % 7 == 0) n["spec"]["taints"] = json::parse(R"([{"key": "k", "value": "v", "effect": "NoSchedule"}])");
    cache.AddOrUpdateNode(NodeFrom(n));
  }
  SchedulerConfig serial = config;
  serial.parallelism = 1;
  SchedulerConfig parallel = config;
  parallel.parallelism = 4;
  ScheduleAlgorithm a(serial, BuildPlugins(serial));
  ScheduleAlgorithm b(parallel, BuildPlugins(parallel));
  for (int i = 0; i < 20; ++i) {
    PodInfo pod = Pod("p" + std::to_string(i), "2");
    ScheduleOutcome x = a.Schedule(pod, cache);
    ScheduleOutcome y = b.Schedule(pod, cache);
    EXPECT_EQ(x.node, y.node);
    EXPECT_EQ(x.evaluated_nodes, y.evaluated_nodes);
  }
}

TEST_F(AlgorithmTest, TiesAreDeterministicButSpread) {
  for (int i = 0; i < 10; ++i) cache.AddOrUpdateNode(Node("n" + std::to_string(i)));
  ScheduleAlgorithm algorithm(config, BuildPlugins(config));
  std::set<std::string> chosen;
  for (int i = 0; i < 20; ++i) {
    // Best-effort pods leave every node equal: only the tie-break decides.
    PodInfo pod = Pod("p" + std::to_string(i));
    ScheduleOutcome out = algorithm.Schedule(pod, cache);
    ASSERT_EQ(out.kind, ScheduleOutcome::Kind::kScheduled);
    ScheduleAlgorithm again(config, BuildPlugins(config));
    EXPECT_EQ(again.Schedule(pod, cache).node, out.node) << "same state, same pod, same node";
    chosen.insert(out.node);
  }
  EXPECT_GE(chosen.size(), 5u) << "identical pods spread over identical nodes";
}

TEST_F(AlgorithmTest, ScoresPickTheLeastAllocatedNode) {
  cache.AddOrUpdateNode(Node("busy"));
  cache.AddOrUpdateNode(Node("idle"));
  cache.AddOrUpdatePod(BoundPod(Pod("x", "3", "6Gi"), "busy"));
  ScheduleAlgorithm algorithm(config, BuildPlugins(config));
  EXPECT_EQ(algorithm.Schedule(Pod("p", "500m", "1Gi"), cache).node, "idle");
}

}  // namespace
}  // namespace kelpie::scheduler
