#include "orchestrator/controllers/work_queue.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <thread>

namespace kelpie::controllers {
namespace {

using std::chrono::milliseconds;

std::unique_ptr<RateLimiter> Fast() {
  return std::make_unique<ItemExponentialFailureRateLimiter>(milliseconds(1), milliseconds(50));
}

double Metric(prometheus::Registry& r, const std::string& name) {
  for (const auto& family : r.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      switch (family.type) {
        case prometheus::MetricType::Counter: return m.counter.value;
        case prometheus::MetricType::Gauge: return m.gauge.value;
        case prometheus::MetricType::Histogram: return static_cast<double>(m.histogram.sample_count);
        default: return -1;
      }
    }
  }
  return -1;
}

TEST(WorkQueueTest, DeduplicatesAndKeepsOrder) {
  WorkQueue q("t", Fast());
  q.Add("a");
  q.Add("b");
  q.Add("a");
  EXPECT_EQ(q.Len(), 2u);
  EXPECT_EQ(*q.Get(), "a");
  EXPECT_EQ(*q.Get(), "b");
  EXPECT_EQ(q.Len(), 0u);
}

TEST(WorkQueueTest, KeyReAddedWhileProcessingWaitsForDone) {
  WorkQueue q("t", Fast());
  q.Add("a");
  auto k = q.Get();
  q.Add("a");  // arrives while a worker holds "a"
  EXPECT_EQ(q.Len(), 0u) << "never handed to two workers";
  q.Done(*k);
  EXPECT_EQ(q.Len(), 1u);
  EXPECT_EQ(*q.Get(), "a");
  q.Done("a");
  EXPECT_EQ(q.Len(), 0u);
}

TEST(WorkQueueTest, AddAfterDeliversLaterAndShutDownWakesWorkers) {
  WorkQueue q("t", Fast());
  q.AddAfter("later", milliseconds(30));
  EXPECT_EQ(q.Len(), 0u);
  auto k = q.Get();  // blocks until the delay passed
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(*k, "later");
  std::atomic<bool> woke{false};
  std::thread worker([&] {
    EXPECT_FALSE(q.Get().has_value());
    woke = true;
  });
  q.ShutDown();
  worker.join();
  EXPECT_TRUE(woke);
  EXPECT_TRUE(q.ShuttingDown());
  q.Add("ignored");
  EXPECT_EQ(q.Len(), 0u);
}

TEST(WorkQueueTest, RateLimitedRetriesCountAndForget) {
  WorkQueue q("t", Fast());
  q.AddRateLimited("a");
  q.AddRateLimited("a");
  EXPECT_EQ(q.NumRequeues("a"), 2);
  auto k = q.Get();
  EXPECT_EQ(*k, "a");
  q.Forget("a");
  q.Done("a");
  EXPECT_EQ(q.NumRequeues("a"), 0);
}

TEST(WorkQueueTest, ParallelWorkersProcessEachKeyOnce) {
  WorkQueue q("t", Fast());
  std::atomic<int> processed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      while (auto k = q.Get()) {
        processed++;
        q.Done(*k);
      }
    });
  }
  for (int i = 0; i < 1000; ++i) q.Add("k" + std::to_string(i));
  for (int i = 0; i < 2000 && processed.load() < 1000; ++i) std::this_thread::sleep_for(milliseconds(5));
  q.ShutDown();
  for (auto& t : workers) t.join();
  EXPECT_EQ(processed.load(), 1000);
}

TEST(WorkQueueTest, ExportsKubernetesWorkqueueMetrics) {
  prometheus::Registry registry;
  WorkQueue q("deployment", Fast(), &registry);
  q.Add("a");
  q.Add("b");
  q.Add("a");
  EXPECT_EQ(Metric(registry, "workqueue_adds_total"), 3);
  EXPECT_EQ(Metric(registry, "workqueue_depth"), 2);
  auto k = q.Get();
  q.Done(*k);
  EXPECT_EQ(Metric(registry, "workqueue_depth"), 1);
  EXPECT_EQ(Metric(registry, "workqueue_queue_duration_seconds"), 1);
  EXPECT_EQ(Metric(registry, "workqueue_work_duration_seconds"), 1);
  q.AddRateLimited("c");
  EXPECT_EQ(Metric(registry, "workqueue_retries_total"), 1);
  bool labelled = false;
  for (const auto& f : registry.Collect()) {
    for (const auto& m : f.metric) {
      for (const auto& l : m.label) labelled |= (l.name == "name" && l.value == "deployment");
    }
  }
  EXPECT_TRUE(labelled);
}

}  // namespace
}  // namespace kelpie::controllers
