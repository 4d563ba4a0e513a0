#include "orchestrator/scheduler/scheduling_queue.h"

#include <gtest/gtest.h>

#include "tests/unit/scheduler/test_objects.h"

namespace kelpie::scheduler {
namespace {

using namespace std::chrono_literals;
using testing::Pod;
using testing::PodFrom;

std::shared_ptr<const PodInfo> P(const std::string& name, int32_t priority = 0) {
  PodInfo p = Pod(name);
  p.priority = priority;
  return std::make_shared<const PodInfo>(std::move(p));
}

class QueueTest : public ::testing::Test {
 protected:
  Clock::time_point now{std::chrono::seconds(1000)};
  SchedulingQueue queue{QueueOptions{}, [this] { return now; }};

  std::string PopName() {
    auto q = queue.Pop(0ms);
    return q ? q->pod->name : "";
  }
};

TEST_F(QueueTest, HigherPriorityFirstThenOlder) {
  queue.Add(P("low", 1));
  now += 1ms;
  queue.Add(P("high", 100));
  now += 1ms;
  queue.Add(P("low2", 1));
  now += 1ms;
  queue.Add(P("high2", 100));
  EXPECT_EQ(PopName(), "high");
  EXPECT_EQ(PopName(), "high2");
  EXPECT_EQ(PopName(), "low");
  EXPECT_EQ(PopName(), "low2");
  EXPECT_EQ(PopName(), "");
}

TEST_F(QueueTest, BackoffDoublesUpToTheMaximum) {
  EXPECT_EQ(queue.BackoffDuration(1), 1000ms);
  EXPECT_EQ(queue.BackoffDuration(2), 2000ms);
  EXPECT_EQ(queue.BackoffDuration(4), 8000ms);
  EXPECT_EQ(queue.BackoffDuration(5), 10000ms);
  EXPECT_EQ(queue.BackoffDuration(50), 10000ms);

  queue.Add(P("a"));
  auto q = queue.Pop(0ms);
  ASSERT_TRUE(q);
  queue.AddBackoff(*q);
  EXPECT_EQ(queue.Pending().backoff, 1u);
  now += 999ms;
  queue.FlushBackoffCompleted();
  EXPECT_EQ(PopName(), "") << "still backing off";
  now += 2ms;
  queue.FlushBackoffCompleted();
  EXPECT_EQ(PopName(), "a");
}

TEST_F(QueueTest, UnschedulableWaitsForAClusterEvent) {
  queue.Add(P("a"));
  auto q = queue.Pop(0ms);
  ASSERT_TRUE(q);
  queue.AddUnschedulable(*q);
  EXPECT_EQ(queue.Pending().unschedulable, 1u);
  now += 20s;
  queue.FlushBackoffCompleted();
  queue.FlushUnschedulableLeftover();
  EXPECT_EQ(PopName(), "") << "no event, not yet 5 minutes";
  // A node added or changed, or a pod deleted: back to activeQ (backoff over).
  queue.MoveAllToActiveOrBackoff();
  EXPECT_EQ(queue.Pending().unschedulable, 0u);
  EXPECT_EQ(PopName(), "a");
}

TEST_F(QueueTest, MoveWhileBackingOffGoesThroughBackoff) {
  queue.Add(P("a"));
  auto q = queue.Pop(0ms);
  queue.AddUnschedulable(*q);
  queue.MoveAllToActiveOrBackoff();  // right away: the 1 s backoff is not over
  EXPECT_EQ(queue.Pending().backoff, 1u);
  EXPECT_EQ(PopName(), "");
  now += 1s;
  queue.FlushBackoffCompleted();
  EXPECT_EQ(PopName(), "a");
}

TEST_F(QueueTest, UnschedulableLeftoverAfterFiveMinutes) {
  queue.Add(P("a"));
  queue.AddUnschedulable(*queue.Pop(0ms));
  now += 5min;
  queue.FlushUnschedulableLeftover();
  EXPECT_EQ(PopName(), "a");
}

TEST_F(QueueTest, EventDuringAnAttemptIsNotLost) {
  queue.Add(P("a"));
  auto q = queue.Pop(0ms);
  // A node is added while the attempt runs; the attempt then fails.
  queue.MoveAllToActiveOrBackoff();
  queue.AddUnschedulable(*q);
  EXPECT_EQ(queue.Pending().unschedulable, 0u);
  EXPECT_EQ(queue.Pending().backoff, 1u);
}

TEST_F(QueueTest, UpdatesAndDeletesDuringAnAttempt) {
  queue.Add(P("a"));
  auto q = queue.Pop(0ms);
  queue.Update(P("a"));  // e.g. a label change while in flight: not queued twice
  EXPECT_EQ(queue.Pending().active, 0u);
  queue.Delete("default/a");
  EXPECT_TRUE(queue.DeletedInFlight("default/a"));
  queue.AddUnschedulable(*q);
  EXPECT_FALSE(queue.Contains("default/a")) << "a deleted pod must not come back";
}

TEST_F(QueueTest, OwnStatusUpdateDoesNotWakeButSpecChangeDoes) {
  queue.Add(P("a"));
  queue.AddUnschedulable(*queue.Pop(0ms));
  PodInfo same = *P("a");
  same.unschedulable_message = "0/1 nodes are available: 1 Insufficient cpu.";
  queue.Update(std::make_shared<const PodInfo>(same));
  EXPECT_EQ(queue.Pending().unschedulable, 1u);
  PodInfo changed = PodFrom(testing::PodJson("a", "1m"));
  now += 2s;
  queue.Update(std::make_shared<const PodInfo>(changed));
  EXPECT_EQ(queue.Pending().unschedulable, 0u);
  EXPECT_EQ(PopName(), "a");
}

TEST_F(QueueTest, PopBlocksUntilCloseOrTimeout) {
  EXPECT_FALSE(queue.Pop(10ms));
  queue.Close();
  EXPECT_FALSE(queue.Pop(10s));
}

}  // namespace
}  // namespace kelpie::scheduler
