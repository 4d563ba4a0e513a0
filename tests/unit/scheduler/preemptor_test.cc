#include "orchestrator/scheduler/preemptor.h"

#include <gtest/gtest.h>

#include "orchestrator/scheduler/plugins.h"
#include "tests/unit/scheduler/test_objects.h"

namespace kelpie::scheduler {
namespace {

using testing::BoundPod;
using testing::Node;
using testing::NodeFrom;
using testing::Pod;
using testing::PodFrom;

PodInfo WithPriority(PodInfo p, int32_t priority) {
  p.priority = priority;
  return p;
}

class PreemptorTest : public ::testing::Test {
 protected:
  SchedulerCache cache;
  SchedulerConfig config;
  std::unique_ptr<ScheduleAlgorithm> algorithm;

  void SetUp() override {
    cache.AddOrUpdateNode(Node("n1", "4"));
    cache.AddOrUpdateNode(Node("n2", "4"));
    // n1: two 2-cpu pods of priority 10; n2: four 1-cpu pods of priority 5.
    cache.AddOrUpdatePod(BoundPod(WithPriority(Pod("a1", "2"), 10), "n1"));
    cache.AddOrUpdatePod(BoundPod(WithPriority(Pod("a2", "2"), 10), "n1"));
    for (int i = 0; i < 4; ++i) {
      cache.AddOrUpdatePod(BoundPod(WithPriority(Pod("b" + std::to_string(i), "1"), 5), "n2"));
    }
    algorithm = std::make_unique<ScheduleAlgorithm>(config, BuildPlugins(config));
  }

  PreemptionResult Preempt(const PodInfo& pod) {
    ScheduleOutcome out = algorithm->Schedule(pod, cache);
    EXPECT_EQ(out.kind, ScheduleOutcome::Kind::kUnschedulable);
    return Preemptor(*algorithm).Preempt(pod, cache, out.diagnosis);
  }
};

TEST_F(PreemptorTest, EvictsTheFewestLowerPriorityPods) {
  // 2 cpu: one victim on n1 beats two on n2.
  PreemptionResult r = Preempt(WithPriority(Pod("high", "2"), 100));
  EXPECT_EQ(r.node, "n1");
  ASSERT_EQ(r.victims.size(), 1u);
  EXPECT_EQ(r.victims[0]->priority.value_or(0), 10);
}

TEST_F(PreemptorTest, OnlyLowerPriorityPodsAreVictims) {
  // Priority 7 may evict only n2's priority-5 pods: 3 cpu needs three of them.
  PreemptionResult r = Preempt(WithPriority(Pod("mid", "3"), 7));
  EXPECT_EQ(r.node, "n2");
  EXPECT_EQ(r.victims.size(), 3u);
}

TEST_F(PreemptorTest, NothingToEvict) {
  PreemptionResult r = Preempt(WithPriority(Pod("low", "1"), 1));
  EXPECT_TRUE(r.node.empty());
  EXPECT_EQ(r.message, "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.");
  PreemptionResult big = Preempt(WithPriority(Pod("huge", "8"), 100));
  EXPECT_EQ(big.message, "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.");
  PodInfo never = WithPriority(Pod("never", "2"), 100);
  never.preempt_never = true;
  EXPECT_EQ(Preempt(never).message, "preemption: not eligible due to preemptionPolicy=Never.");
}

}  // namespace
}  // namespace kelpie::scheduler
