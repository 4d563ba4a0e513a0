#include "orchestrator/scheduler/scheduling_queue.h"

#include <algorithm>

namespace kelpie::scheduler {

SchedulingQueue::SchedulingQueue(QueueOptions options, std::function<Clock::time_point()> now)
    : options_(options), now_(std::move(now)) {}

bool SchedulingQueue::HeapLess::operator()(const QueuedPod& a, const QueuedPod& b) const {
  // std::push_heap keeps the *largest* on top: "a < b" means b goes first.
  int32_t pa = a.pod->Priority();
  int32_t pb = b.pod->Priority();
  if (pa != pb) return pa < pb;
  return a.timestamp > b.timestamp;
}

void SchedulingQueue::PushActiveLocked(QueuedPod pod) {
  in_active_[pod.pod->Key()] = true;
  active_.push_back(std::move(pod));
  std::push_heap(active_.begin(), active_.end(), HeapLess{});
  cv_.notify_one();
}

void SchedulingQueue::RemoveFromActiveLocked(const std::string& key) {
  if (!in_active_.erase(key)) return;
  auto it = std::find_if(active_.begin(), active_.end(), [&](const QueuedPod& p) { return p.pod->Key() == key; });
  if (it != active_.end()) {
    active_.erase(it);
    std::make_heap(active_.begin(), active_.end(), HeapLess{});
  }
}

void SchedulingQueue::Add(std::shared_ptr<const PodInfo> pod) { Update(std::move(pod)); }

void SchedulingQueue::Update(std::shared_ptr<const PodInfo> pod) {
  std::lock_guard lock(mu_);
  std::string key = pod->Key();
  if (in_active_.count(key)) {
    for (auto& q : active_) {
      if (q.pod->Key() == key) {
        q.pod = pod;
        break;
      }
    }
    std::make_heap(active_.begin(), active_.end(), HeapLess{});
    return;
  }
  if (auto it = backoff_.find(key); it != backoff_.end()) {
    it->second.pod = std::move(pod);
    return;
  }
  if (auto it = unschedulable_.find(key); it != unschedulable_.end()) {
    // Only a change to what scheduling reads can make it fit; our own status
    // updates (the PodScheduled condition) must not wake it.
    if (it->second.pod->fingerprint == pod->fingerprint) {
      it->second.pod = std::move(pod);
      return;
    }
    QueuedPod q = std::move(it->second);
    unschedulable_.erase(it);
    q.pod = std::move(pod);
    if (IsBackingOffLocked(q)) {
      backoff_[key] = std::move(q);
    } else {
      q.timestamp = now_();
      PushActiveLocked(std::move(q));
    }
    return;
  }
  if (auto it = in_flight_.find(key); it != in_flight_.end()) {
    it->second.latest = std::move(pod);
    return;
  }
  // New: queue it.
  auto now = now_();
  auto& a = attempts_[key];
  if (a.second == Clock::time_point{}) a.second = now;
  QueuedPod q;
  q.pod = std::move(pod);
  q.attempts = a.first;
  q.timestamp = now;
  q.initial_attempt = a.second;
  PushActiveLocked(std::move(q));
}

void SchedulingQueue::Delete(const std::string& key) {
  std::lock_guard lock(mu_);
  RemoveFromActiveLocked(key);
  backoff_.erase(key);
  unschedulable_.erase(key);
  attempts_.erase(key);
  if (auto it = in_flight_.find(key); it != in_flight_.end()) it->second.deleted = true;
}

bool SchedulingQueue::TakeInFlightLocked(QueuedPod& pod, bool* changed) {
  *changed = false;
  auto it = in_flight_.find(pod.pod->Key());
  if (it == in_flight_.end()) return true;
  InFlight f = std::move(it->second);
  in_flight_.erase(it);
  if (f.deleted) return false;
  if (f.latest) {
    *changed = f.latest->fingerprint != pod.pod->fingerprint;
    pod.pod = std::move(f.latest);
  }
  return true;
}

bool SchedulingQueue::DeletedInFlight(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = in_flight_.find(key);
  return it != in_flight_.end() && it->second.deleted;
}

std::optional<QueuedPod> SchedulingQueue::Pop(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return closed_ || !active_.empty(); })) return std::nullopt;
  if (closed_) return std::nullopt;
  std::pop_heap(active_.begin(), active_.end(), HeapLess{});
  QueuedPod q = std::move(active_.back());
  active_.pop_back();
  in_active_.erase(q.pod->Key());
  ++scheduling_cycle_;
  q.scheduling_cycle = scheduling_cycle_;
  auto& a = attempts_[q.pod->Key()];
  q.attempts = ++a.first;
  in_flight_[q.pod->Key()] = InFlight{};
  return q;
}

std::chrono::milliseconds SchedulingQueue::BackoffDuration(int attempts) const {
  auto d = options_.initial_backoff;
  for (int i = 1; i < attempts; ++i) {
    d *= 2;
    if (d >= options_.max_backoff) return options_.max_backoff;
  }
  return std::min(d, options_.max_backoff);
}

bool SchedulingQueue::IsBackingOffLocked(const QueuedPod& pod) const {
  return now_() < pod.timestamp + BackoffDuration(pod.attempts);
}

void SchedulingQueue::AddUnschedulable(QueuedPod pod) {
  std::lock_guard lock(mu_);
  std::string key = pod.pod->Key();
  bool changed = false;
  if (!TakeInFlightLocked(pod, &changed)) {
    attempts_.erase(key);
    return;
  }
  if (in_active_.count(key) || backoff_.count(key) || unschedulable_.count(key)) return;
  pod.timestamp = now_();
  if (changed || move_request_cycle_ >= pod.scheduling_cycle) {
    backoff_[key] = std::move(pod);
  } else {
    pod.unschedulable_since = pod.timestamp;
    unschedulable_[key] = std::move(pod);
  }
}

void SchedulingQueue::AddBackoff(QueuedPod pod) {
  std::lock_guard lock(mu_);
  std::string key = pod.pod->Key();
  bool changed = false;
  if (!TakeInFlightLocked(pod, &changed)) {
    attempts_.erase(key);
    return;
  }
  if (in_active_.count(key) || backoff_.count(key) || unschedulable_.count(key)) return;
  pod.timestamp = now_();
  backoff_[key] = std::move(pod);
}

void SchedulingQueue::Done(const std::string& key) {
  std::lock_guard lock(mu_);
  in_flight_.erase(key);
  if (!in_active_.count(key) && !backoff_.count(key) && !unschedulable_.count(key)) attempts_.erase(key);
}

void SchedulingQueue::MoveAllToActiveOrBackoff() {
  std::lock_guard lock(mu_);
  move_request_cycle_ = scheduling_cycle_;
  for (auto& [key, q] : unschedulable_) {
    if (IsBackingOffLocked(q)) {
      backoff_[key] = std::move(q);
    } else {
      q.timestamp = now_();
      PushActiveLocked(std::move(q));
    }
  }
  unschedulable_.clear();
}

void SchedulingQueue::FlushBackoffCompleted() {
  std::lock_guard lock(mu_);
  for (auto it = backoff_.begin(); it != backoff_.end();) {
    if (IsBackingOffLocked(it->second)) {
      ++it;
      continue;
    }
    QueuedPod q = std::move(it->second);
    it = backoff_.erase(it);
    q.timestamp = now_();
    PushActiveLocked(std::move(q));
  }
}

void SchedulingQueue::FlushUnschedulableLeftover() {
  std::lock_guard lock(mu_);
  auto now = now_();
  for (auto it = unschedulable_.begin(); it != unschedulable_.end();) {
    if (now - it->second.unschedulable_since < options_.max_unschedulable) {
      ++it;
      continue;
    }
    QueuedPod q = std::move(it->second);
    it = unschedulable_.erase(it);
    if (IsBackingOffLocked(q)) {
      backoff_[q.pod->Key()] = std::move(q);
    } else {
      q.timestamp = now;
      PushActiveLocked(std::move(q));
    }
  }
}

void SchedulingQueue::Close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

bool SchedulingQueue::Contains(const std::string& key) const {
  std::lock_guard lock(mu_);
  return in_active_.count(key) || backoff_.count(key) || unschedulable_.count(key);
}

SchedulingQueue::Counts SchedulingQueue::Pending() const {
  std::lock_guard lock(mu_);
  return Counts{active_.size(), backoff_.size(), unschedulable_.size()};
}

int64_t SchedulingQueue::SchedulingCycle() const {
  std::lock_guard lock(mu_);
  return scheduling_cycle_;
}

}  // namespace kelpie::scheduler
