// Controller work queue with client-go's semantics: a key is queued at most
// once (de-duplicated), never handed to two workers at once (re-added keys
// wait until Done), delayed adds (AddAfter), rate-limited retries
// (AddRateLimited / Forget / NumRequeues) and ShutDown that wakes all Get
// callers. Kubernetes workqueue metrics go to an optional registry.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "orchestrator/controllers/rate_limiter.h"

namespace prometheus {
class Registry;
class Gauge;
class Counter;
class Histogram;
}  // namespace prometheus

namespace kelpie::controllers {

class WorkQueue {
 public:
  // `name` is the metrics label; `registry` may be null (no metrics).
  WorkQueue(std::string name, std::unique_ptr<RateLimiter> limiter, prometheus::Registry* registry = nullptr,
            const Clock& clock = RealClock::Get());
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  void Add(const std::string& key);
  void AddAfter(const std::string& key, Duration delay);
  void AddRateLimited(const std::string& key);
  void Forget(const std::string& key);
  int NumRequeues(const std::string& key);

  // Blocks for the next key; nullopt once shut down and drained of nothing
  // (after ShutDown, Get returns nullopt immediately).
  std::optional<std::string> Get();
  // The worker finished `key`; if it was re-added meanwhile it is queued again.
  void Done(const std::string& key);

  size_t Len() const;
  void ShutDown();
  bool ShuttingDown() const;

 private:
  void AddLocked(const std::string& key, std::chrono::steady_clock::time_point now);
  void DelayLoop();

  const std::string name_;
  std::unique_ptr<RateLimiter> limiter_;
  const Clock& clock_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::unordered_set<std::string> dirty_;
  std::unordered_set<std::string> processing_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> added_at_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> started_at_;
  bool shutting_down_ = false;

  // Delayed adds: ready time -> key (earliest per key wins).
  std::condition_variable delay_cv_;
  std::multimap<std::chrono::steady_clock::time_point, std::string> waiting_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> waiting_by_key_;
  std::thread delay_thread_;

  prometheus::Gauge* depth_ = nullptr;
  prometheus::Counter* adds_ = nullptr;
  prometheus::Counter* retries_ = nullptr;
  prometheus::Histogram* queue_duration_ = nullptr;
  prometheus::Histogram* work_duration_ = nullptr;
};

}  // namespace kelpie::controllers
