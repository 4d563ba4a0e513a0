#include "orchestrator/controllers/work_queue.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace kelpie::controllers {
namespace {

// Kubernetes' workqueue buckets: 10^-8 .. 10^1 seconds.
prometheus::Histogram::BucketBoundaries DurationBuckets() {
  prometheus::Histogram::BucketBoundaries b;
  double v = 1e-8;
  for (int i = 0; i < 10; ++i, v *= 10) b.push_back(v);
  return b;
}

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

WorkQueue::WorkQueue(std::string name, std::unique_ptr<RateLimiter> limiter, prometheus::Registry* registry,
                     const Clock& clock)
    : name_(std::move(name)), limiter_(std::move(limiter)), clock_(clock) {
  if (registry != nullptr) {
    std::map<std::string, std::string> labels{{"name", name_}};
    depth_ = &prometheus::BuildGauge().Name("workqueue_depth").Help("Current depth of workqueue").Register(*registry).Add(labels);
    adds_ = &prometheus::BuildCounter()
                 .Name("workqueue_adds_total")
                 .Help("Total number of adds handled by workqueue")
                 .Register(*registry)
                 .Add(labels);
    retries_ = &prometheus::BuildCounter()
                    .Name("workqueue_retries_total")
                    .Help("Total number of retries handled by workqueue")
                    .Register(*registry)
                    .Add(labels);
    queue_duration_ = &prometheus::BuildHistogram()
                           .Name("workqueue_queue_duration_seconds")
                           .Help("How long in seconds an item stays in workqueue before being requested")
                           .Register(*registry)
                           .Add(labels, DurationBuckets());
    work_duration_ = &prometheus::BuildHistogram()
                          .Name("workqueue_work_duration_seconds")
                          .Help("How long in seconds processing an item from workqueue takes")
                          .Register(*registry)
                          .Add(labels, DurationBuckets());
  }
  delay_thread_ = std::thread([this] { DelayLoop(); });
}

WorkQueue::~WorkQueue() {
  ShutDown();
  if (delay_thread_.joinable()) delay_thread_.join();
}

void WorkQueue::AddLocked(const std::string& key, std::chrono::steady_clock::time_point now) {
  if (shutting_down_) return;
  if (adds_) adds_->Increment();
  if (dirty_.count(key)) return;
  dirty_.insert(key);
  added_at_.emplace(key, now);
  if (processing_.count(key)) return;  // queued again by Done
  queue_.push_back(key);
  if (depth_) depth_->Set(static_cast<double>(queue_.size()));
  cv_.notify_one();
}

void WorkQueue::Add(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  AddLocked(key, clock_.Now());
}

void WorkQueue::AddAfter(const std::string& key, Duration delay) {
  if (delay <= Duration::zero()) return Add(key);
  std::lock_guard<std::mutex> lock(mu_);
  if (shutting_down_) return;
  if (retries_) retries_->Increment();
  auto ready = std::chrono::steady_clock::now() + delay;
  auto it = waiting_by_key_.find(key);
  if (it != waiting_by_key_.end()) {
    if (it->second <= ready) return;  // already due earlier
    for (auto w = waiting_.lower_bound(it->second); w != waiting_.end() && w->first == it->second; ++w) {
      if (w->second == key) {
        waiting_.erase(w);
        break;
      }
    }
  }
  waiting_by_key_[key] = ready;
  waiting_.emplace(ready, key);
  delay_cv_.notify_one();
}

void WorkQueue::AddRateLimited(const std::string& key) { AddAfter(key, limiter_->When(key)); }

void WorkQueue::Forget(const std::string& key) { limiter_->Forget(key); }

int WorkQueue::NumRequeues(const std::string& key) { return limiter_->NumRequeues(key); }

std::optional<std::string> WorkQueue::Get() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return !queue_.empty() || shutting_down_; });
  if (queue_.empty()) return std::nullopt;
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  auto now = clock_.Now();
  if (depth_) depth_->Set(static_cast<double>(queue_.size()));
  auto it = added_at_.find(key);
  if (it != added_at_.end()) {
    if (queue_duration_) queue_duration_->Observe(Seconds(now - it->second));
    added_at_.erase(it);
  }
  started_at_[key] = now;
  processing_.insert(key);
  dirty_.erase(key);
  return key;
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = started_at_.find(key);
  if (it != started_at_.end()) {
    if (work_duration_) work_duration_->Observe(Seconds(clock_.Now() - it->second));
    started_at_.erase(it);
  }
  processing_.erase(key);
  if (dirty_.count(key) && !shutting_down_) {
    queue_.push_back(key);
    if (depth_) depth_->Set(static_cast<double>(queue_.size()));
    cv_.notify_one();
  }
}

size_t WorkQueue::Len() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void WorkQueue::ShutDown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutting_down_ = true;
  queue_.clear();
  cv_.notify_all();
  delay_cv_.notify_all();
}

bool WorkQueue::ShuttingDown() const {
  std::lock_guard<std::mutex> lock(mu_);
  return shutting_down_;
}

void WorkQueue::DelayLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutting_down_) {
    if (waiting_.empty()) {
      delay_cv_.wait(lock);
      continue;
    }
    auto first = waiting_.begin();
    // Delays run on the real clock: the injected clock only drives
    // rate-limiter arithmetic and metrics.
    if (first->first > std::chrono::steady_clock::now()) {
      delay_cv_.wait_until(lock, first->first);
      continue;
    }
    std::string key = first->second;
    waiting_by_key_.erase(key);
    waiting_.erase(first);
    AddLocked(key, clock_.Now());
  }
}

}  // namespace kelpie::controllers
