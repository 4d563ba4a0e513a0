// In-flight budgets, the long-running classification and request
// deadlines.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "orchestrator/apiserver/api_server.h"
#include "orchestrator/apiserver/deadline_scheduler.h"
#include "orchestrator/apiserver/inflight_limiter.h"
#include "orchestrator/apiserver/request_info.h"

namespace kelpie::apiserver {
namespace {

using Kind = InflightLimiter::Kind;

TEST(InflightLimiter, SeparateBudgetsAndRelease) {
  InflightLimiter l(2, 1);
  EXPECT_TRUE(l.TryAcquire(Kind::kReadOnly));
  EXPECT_TRUE(l.TryAcquire(Kind::kReadOnly));
  EXPECT_FALSE(l.TryAcquire(Kind::kReadOnly));
  EXPECT_TRUE(l.TryAcquire(Kind::kMutating));  // its own budget
  EXPECT_FALSE(l.TryAcquire(Kind::kMutating));
  EXPECT_EQ(l.current(Kind::kReadOnly), 2);
  l.Release(Kind::kReadOnly);
  EXPECT_TRUE(l.TryAcquire(Kind::kReadOnly));
  l.Release(Kind::kMutating);
  EXPECT_EQ(l.current(Kind::kMutating), 0);
}

TEST(InflightLimiter, ZeroMeansUnlimited) {
  InflightLimiter l(0, 0);
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(l.TryAcquire(Kind::kMutating));
  EXPECT_EQ(l.current(Kind::kMutating), 10000);
}

TEST(InflightLimiter, NeverExceedsTheLimitUnderContention) {
  InflightLimiter l(3, 3);
  std::atomic<int> inside{0}, max_seen{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (!l.TryAcquire(Kind::kReadOnly)) {
          refused++;
          continue;
        }
        int now = ++inside;
        int seen = max_seen.load();
        while (now > seen && !max_seen.compare_exchange_weak(seen, now)) {
        }
        --inside;
        l.Release(Kind::kReadOnly);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(max_seen.load(), 3);
  EXPECT_EQ(l.current(Kind::kReadOnly), 0);
}

TEST(LongRunning, AsKubeApiserverClassifies) {
  EXPECT_TRUE(IsLongRunning(ParseRequestInfo("GET", "/api/v1/pods", true)));
  EXPECT_TRUE(IsLongRunning(ParseRequestInfo("GET", "/api/v1/namespaces/d/pods/p/log", false)));
  EXPECT_TRUE(IsLongRunning(ParseRequestInfo("POST", "/api/v1/namespaces/d/pods/p/exec", false)));
  EXPECT_TRUE(IsLongRunning(ParseRequestInfo("GET", "/api/v1/namespaces/d/pods/p/portforward", false)));
  EXPECT_FALSE(IsLongRunning(ParseRequestInfo("GET", "/api/v1/namespaces/d/pods", false)));
  EXPECT_FALSE(IsLongRunning(ParseRequestInfo("POST", "/api/v1/namespaces/d/pods", false)));
  EXPECT_EQ(KindOf("list"), Kind::kReadOnly);
  EXPECT_EQ(KindOf("get"), Kind::kReadOnly);
  EXPECT_EQ(KindOf("patch"), Kind::kMutating);
  EXPECT_EQ(KindOf("deletecollection"), Kind::kMutating);
  EXPECT_STREQ(KindLabel(Kind::kReadOnly), "readOnly");
}

TEST(ParseDuration, GoDurations) {
  EXPECT_EQ(ParseDuration("60s")->count(), 60000);
  EXPECT_EQ(ParseDuration("1m30s")->count(), 90000);
  EXPECT_EQ(ParseDuration("500ms")->count(), 500);
  EXPECT_EQ(ParseDuration("2h")->count(), 7200000);
  EXPECT_EQ(ParseDuration("1.5s")->count(), 1500);
  EXPECT_EQ(ParseDuration("45")->count(), 45000);
  EXPECT_FALSE(ParseDuration("").ok());
  EXPECT_FALSE(ParseDuration("10x").ok());
  EXPECT_FALSE(ParseDuration("s").ok());
  EXPECT_FALSE(ParseDuration("-5").ok());
}

TEST(DeadlineScheduler, RunsDueCallbacksInOrderAndSkipsCancelled) {
  DeadlineScheduler s;
  std::mutex mu;
  std::vector<int> ran;
  auto now = DeadlineScheduler::Clock::now();
  s.Schedule(now + std::chrono::milliseconds(30), [&] {
    std::lock_guard<std::mutex> lock(mu);
    ran.push_back(2);
  });
  uint64_t cancelled = s.Schedule(now + std::chrono::milliseconds(10), [&] {
    std::lock_guard<std::mutex> lock(mu);
    ran.push_back(99);
  });
  s.Schedule(now, [&] {
    std::lock_guard<std::mutex> lock(mu);
    ran.push_back(1);
  });
  s.Cancel(cancelled);
  for (int i = 0; i < 500 && s.pending() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  s.Cancel(0);  // unknown ids are fine
  // Cancel of a callback that already ran waits for nothing.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
}

TEST(DeadlineScheduler, MayBeDestroyedFromItsOwnCallback) {
  auto s = std::make_shared<DeadlineScheduler>();
  std::atomic<bool> done{false};
  std::weak_ptr<DeadlineScheduler> weak = s;
  auto* holder = new std::shared_ptr<DeadlineScheduler>(std::move(s));
  (*holder)->Schedule(DeadlineScheduler::Clock::now(), [holder, &done] {
    delete holder;  // the last owner lets go inside the callback
    done = true;
  });
  for (int i = 0; i < 500 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(done);
  EXPECT_TRUE(weak.expired());
}

}  // namespace
}  // namespace kelpie::apiserver
