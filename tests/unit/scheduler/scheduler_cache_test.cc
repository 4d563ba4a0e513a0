#include "orchestrator/scheduler/scheduler_cache.h"

#include <gtest/gtest.h>

#include "orchestrator/scheduler/plugins.h"
#include "orchestrator/scheduler/schedule_algorithm.h"
#include "tests/unit/scheduler/test_objects.h"

namespace kelpie::scheduler {
namespace {

using testing::BoundPod;
using testing::Node;
using testing::NodeFrom;
using testing::Pod;
using testing::PodFrom;

struct FakeTime {
  Clock::time_point now{std::chrono::seconds(1000)};
  std::function<Clock::time_point()> Fn() {
    return [this] { return now; };
  }
};

TEST(SchedulerCacheTest, AssumeCountsUntilForgotten) {
  FakeTime t;
  SchedulerCache cache(t.Fn(), std::chrono::seconds(30));
  cache.AddOrUpdateNode(Node("n1", "1"));
  ASSERT_TRUE(cache.AssumePod(BoundPod(Pod("a", "600m"), "n1")).ok());
  {
    auto lock = cache.ReadLock();
    EXPECT_EQ(cache.FindNode("n1")->requested.milli_cpu, 600);
  }
  EXPECT_TRUE(cache.IsAssumed("default/a"));
  EXPECT_FALSE(cache.AssumePod(BoundPod(Pod("a", "600m"), "n1")).ok()) << "assumed twice";
  cache.ForgetPod("default/a");
  auto lock = cache.ReadLock();
  EXPECT_EQ(cache.FindNode("n1")->requested.milli_cpu, 0);
  EXPECT_FALSE(cache.Contains("default/a"));
}

TEST(SchedulerCacheTest, InformerConfirmsAnAssumedPodAndExpiryDropsLostBindings) {
  FakeTime t;
  SchedulerCache cache(t.Fn(), std::chrono::seconds(30));
  cache.AddOrUpdateNode(Node("n1", "2"));
  ASSERT_TRUE(cache.AssumePod(BoundPod(Pod("a", "1"), "n1")).ok());
  ASSERT_TRUE(cache.AssumePod(BoundPod(Pod("b", "1"), "n1")).ok());
  cache.FinishBinding("default/a");
  cache.FinishBinding("default/b");
  // An update of the still-unbound pod keeps the assumption.
  cache.AddOrUpdatePod(Pod("a", "1"));
  EXPECT_TRUE(cache.IsAssumed("default/a"));
  // The informer reports a bound: confirmed, no longer assumed, counted once.
  cache.AddOrUpdatePod(BoundPod(Pod("a", "1"), "n1"));
  EXPECT_FALSE(cache.IsAssumed("default/a"));
  EXPECT_TRUE(cache.Contains("default/a"));
  {
    auto lock = cache.ReadLock();
    EXPECT_EQ(cache.FindNode("n1")->requested.milli_cpu, 2000);
    EXPECT_EQ(cache.FindNode("n1")->pods.size(), 2u);
  }
  t.now += std::chrono::seconds(31);
  EXPECT_EQ(cache.CleanupExpiredAssumedPods(), 1);  // b's binding never showed up
  auto lock = cache.ReadLock();
  EXPECT_EQ(cache.FindNode("n1")->requested.milli_cpu, 1000);
}

TEST(SchedulerCacheTest, BoundPodMovesWithItsNodeAndNodeRemovalKeepsPods) {
  SchedulerCache cache;
  cache.AddOrUpdateNode(Node("n1"));
  cache.AddOrUpdatePod(BoundPod(Pod("a", "1"), "n1"));
  cache.RemoveNode("n1");
  {
    auto lock = cache.ReadLock();
    EXPECT_EQ(cache.Nodes().size(), 0u);
    EXPECT_EQ(cache.FindNode("n1"), nullptr);
  }
  cache.AddOrUpdateNode(Node("n1"));
  {
    auto lock = cache.ReadLock();
    ASSERT_NE(cache.FindNode("n1"), nullptr);
    EXPECT_EQ(cache.FindNode("n1")->requested.milli_cpu, 1000) << "pods of a re-added node still count";
  }
  cache.RemovePod("default/a");
  auto lock = cache.ReadLock();
  EXPECT_EQ(cache.FindNode("n1")->requested.milli_cpu, 0);
  EXPECT_EQ(cache.PodCount(), 0u);
}

// Many quick decisions in a row never put more on a node than it has:
// each decision sees the pods assumed before it.
TEST(SchedulerCacheTest, AssumedPodsPreventOvercommit) {
  SchedulerCache cache;
  for (int i = 0; i < 5; ++i) cache.AddOrUpdateNode(Node("n" + std::to_string(i), "1", "1Gi", "110"));
  SchedulerConfig config;
  config.parallelism = 2;
  ScheduleAlgorithm algorithm(config, BuildPlugins(config));
  int scheduled = 0;
  for (int i = 0; i < 30; ++i) {
    PodInfo pod = Pod("p" + std::to_string(i), "300m");
    ScheduleOutcome out = algorithm.Schedule(pod, cache);
    if (out.kind != ScheduleOutcome::Kind::kScheduled) continue;
    pod.node_name = out.node;
    ASSERT_TRUE(cache.AssumePod(pod).ok());
    ++scheduled;
  }
  EXPECT_EQ(scheduled, 15);  // 3 x 300m per 1-cpu node
  auto lock = cache.ReadLock();
  for (const NodeState* n : cache.Nodes()) {
    EXPECT_LE(n->requested.milli_cpu, n->node->allocatable.milli_cpu) << n->name();
    EXPECT_EQ(n->pods.size(), 3u) << n->name();
  }
}

}  // namespace
}  // namespace kelpie::scheduler
