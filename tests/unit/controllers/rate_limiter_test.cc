#include "orchestrator/controllers/rate_limiter.h"

#include <gtest/gtest.h>

namespace kelpie::controllers {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class FakeClock : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override { return now; }
  std::chrono::steady_clock::time_point now{};
};

TEST(RateLimiterTest, ExponentialPerItemUpToMax) {
  ItemExponentialFailureRateLimiter l(milliseconds(5), seconds(1000));
  EXPECT_EQ(l.When("a"), milliseconds(5));
  EXPECT_EQ(l.When("a"), milliseconds(10));
  EXPECT_EQ(l.When("a"), milliseconds(20));
  EXPECT_EQ(l.When("b"), milliseconds(5));  // independent per item
  EXPECT_EQ(l.NumRequeues("a"), 3);
  for (int i = 0; i < 100; ++i) l.When("a");
  EXPECT_EQ(l.When("a"), seconds(1000));
  l.Forget("a");
  EXPECT_EQ(l.NumRequeues("a"), 0);
  EXPECT_EQ(l.When("a"), milliseconds(5));
}

TEST(RateLimiterTest, BucketAllowsBurstThenQps) {
  FakeClock clock;
  BucketRateLimiter l(10.0, 100, clock);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(l.When("x"), Duration::zero()) << i;
  // Tokens exhausted: each further reservation waits 100 ms more.
  EXPECT_EQ(std::chrono::duration_cast<milliseconds>(l.When("x")), milliseconds(100));
  EXPECT_EQ(std::chrono::duration_cast<milliseconds>(l.When("x")), milliseconds(200));
  // 10 s later the debt is repaid and the bucket refilled (capped at burst).
  clock.now += seconds(10);
  for (int i = 0; i < 98; ++i) EXPECT_EQ(l.When("x"), Duration::zero()) << i;
  EXPECT_GT(l.When("x"), Duration::zero());
}

TEST(RateLimiterTest, DefaultControllerTakesTheLongerDelay) {
  FakeClock clock;
  auto l = DefaultControllerRateLimiter(clock);
  EXPECT_EQ(l->When("a"), milliseconds(5));
  EXPECT_EQ(l->When("a"), milliseconds(10));
  EXPECT_EQ(l->NumRequeues("a"), 2);
  // Drain the bucket with other items: the bucket delay then dominates.
  for (int i = 0; i < 98; ++i) l->When("item" + std::to_string(i));
  EXPECT_GE(l->When("fresh"), milliseconds(100));
  l->Forget("a");
  EXPECT_EQ(l->NumRequeues("a"), 0);
}

}  // namespace
}  // namespace kelpie::controllers
