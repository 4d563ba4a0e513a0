// PodStartLimiter: never more holders than slots, first come first served,
// a cancelled waiter leaves the queue; StepTimings sums repeated steps.
#include "orchestrator/kubelet/pod_start_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "orchestrator/runtime/step_timings.h"

namespace kelpie::kubelet {
namespace {

using namespace std::chrono_literals;

TEST(PodStartLimiterTest, NeverMoreHoldersThanSlots) {
  PodStartLimiter limiter(3);
  std::atomic<int> holding{0}, most{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&] {
      PodStartLimiter::Slot slot = limiter.Acquire(nullptr);
      ASSERT_TRUE(slot.held());
      int now = ++holding;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(5ms);
      --holding;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most.load(), 3);
  EXPECT_GE(most.load(), 1);
  EXPECT_EQ(limiter.in_use(), 0);
  EXPECT_EQ(limiter.waiting(), 0);
}

TEST(PodStartLimiterTest, WaitersGetSlotsInArrivalOrder) {
  PodStartLimiter limiter(1);
  PodStartLimiter::Slot first = limiter.Acquire(nullptr);
  std::mutex mu;
  std::vector<int> order;
  std::vector<std::thread> threads;
  for (int i = 0; i < 5; ++i) {
    threads.emplace_back([&, i] {
      PodStartLimiter::Slot slot = limiter.Acquire(nullptr);
      std::lock_guard<std::mutex> lock(mu);
      order.push_back(i);
    });
    // The next waiter arrives only once this one is queued.
    while (limiter.waiting() < i + 1) std::this_thread::sleep_for(1ms);
  }
  first.Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(PodStartLimiterTest, CancelledWaiterLeavesTheQueue) {
  PodStartLimiter limiter(1);
  PodStartLimiter::Slot held = limiter.Acquire(nullptr);
  std::atomic<bool> cancel{false};
  std::thread waiter([&] {
    PodStartLimiter::Slot slot = limiter.Acquire([&] { return cancel.load(); });
    EXPECT_FALSE(slot.held());
  });
  while (limiter.waiting() < 1) std::this_thread::sleep_for(1ms);
  cancel = true;
  waiter.join();
  EXPECT_EQ(limiter.waiting(), 0);
  held.Release();
  // The slot is free again for the next caller.
  PodStartLimiter::Slot again = limiter.Acquire(nullptr);
  EXPECT_TRUE(again.held());
  EXPECT_EQ(limiter.in_use(), 1);
}

TEST(PodStartLimiterTest, MovedSlotReleasesOnce) {
  PodStartLimiter limiter(2);
  {
    PodStartLimiter::Slot a = limiter.Acquire(nullptr);
    PodStartLimiter::Slot b = std::move(a);
    EXPECT_FALSE(a.held());  // NOLINT(bugprone-use-after-move): moved-from state is defined
    EXPECT_TRUE(b.held());
    EXPECT_EQ(limiter.in_use(), 1);
  }
  EXPECT_EQ(limiter.in_use(), 0);
}

TEST(StepTimingsTest, KeepsFirstOrderAndSumsRepeats) {
  runtime::StepTimings timings;
  timings.Add("cgroup", 2ms);
  timings.Add("netns", 3ms);
  timings.Add("cgroup", 5ms);
  {
    runtime::ScopedStep step(&timings, "cni bridge");
  }
  runtime::ScopedStep ignored(nullptr, "nothing recorded");
  auto steps = timings.Steps();
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].first, "cgroup");
  EXPECT_EQ(steps[0].second, std::chrono::milliseconds(7));
  EXPECT_EQ(steps[1].first, "netns");
  EXPECT_EQ(steps[2].first, "cni bridge");
  EXPECT_GE(steps[2].second.count(), 0);
}

}  // namespace
}  // namespace kelpie::kubelet
