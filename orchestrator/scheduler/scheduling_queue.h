// Pending pods in three places, as kube-scheduler keeps them:
//  - activeQ: ready to be tried, a heap by priority (higher first), then by
//    the time they were queued (older first);
//  - backoffQ: failed recently, waiting 1 s, 2 s, 4 s ... up to 10 s (per
//    pod, doubling with each attempt) before going back to activeQ;
//  - unschedulable: did not fit; moved back when a cluster event could help
//    (node added or changed, pod deleted) and anyway after 5 minutes.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "orchestrator/scheduler/pod_info.h"
#include "orchestrator/scheduler/scheduler_cache.h"

namespace kelpie::scheduler {

struct QueuedPod {
  std::shared_ptr<const PodInfo> pod;
  int attempts = 0;
  Clock::time_point timestamp{};          // when it last entered a queue
  Clock::time_point initial_attempt{};    // first time it was queued (for the SLI)
  Clock::time_point unschedulable_since{};
  int64_t scheduling_cycle = 0;           // the cycle that popped it
};

struct QueueOptions {
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{10000};
  std::chrono::milliseconds max_unschedulable{std::chrono::minutes(5)};
};

class SchedulingQueue {
 public:
  explicit SchedulingQueue(QueueOptions options = {}, std::function<Clock::time_point()> now = Clock::now);

  // A new pending pod goes to activeQ (no-op when it is already queued:
  // then it is updated in place).
  void Add(std::shared_ptr<const PodInfo> pod);
  // The pod changed: update it where it sits; an unschedulable pod whose
  // spec changed is tried again.
  void Update(std::shared_ptr<const PodInfo> pod);
  void Delete(const std::string& key);

  // Blocks until a pod is ready or the queue closes (nullopt), or `timeout` passes.
  std::optional<QueuedPod> Pop(std::chrono::milliseconds timeout);

  // After a failed attempt: unschedulable pods wait for an event, errors back off.
  // A move request seen since the pod was popped sends it to backoff instead,
  // so an event that raced with the attempt is not lost.
  void AddUnschedulable(QueuedPod pod);
  void AddBackoff(QueuedPod pod);
  // The pod is done (bound or dropped): forget its attempt bookkeeping.
  void Done(const std::string& key);
  // Whether the pod was deleted while its attempt was in flight.
  bool DeletedInFlight(const std::string& key) const;

  // A cluster event that may make unschedulable pods fit.
  void MoveAllToActiveOrBackoff();
  // Periodic housekeeping: backoffQ pods whose time is up, and unschedulable
  // pods that waited longer than max_unschedulable.
  void FlushBackoffCompleted();
  void FlushUnschedulableLeftover();

  void Close();
  bool Contains(const std::string& key) const;

  struct Counts {
    size_t active = 0;
    size_t backoff = 0;
    size_t unschedulable = 0;
  };
  Counts Pending() const;
  int64_t SchedulingCycle() const;

  // The backoff a pod waits after `attempts` failed attempts.
  std::chrono::milliseconds BackoffDuration(int attempts) const;

 private:
  struct HeapLess {
    bool operator()(const QueuedPod& a, const QueuedPod& b) const;
  };
  void PushActiveLocked(QueuedPod pod);
  void RemoveFromActiveLocked(const std::string& key);
  bool IsBackingOffLocked(const QueuedPod& pod) const;

  QueueOptions options_;
  std::function<Clock::time_point()> now_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<QueuedPod> active_;  // heap
  std::unordered_map<std::string, bool> in_active_;
  std::map<std::string, QueuedPod> backoff_;
  std::map<std::string, QueuedPod> unschedulable_;
  std::unordered_map<std::string, std::pair<int, Clock::time_point>> attempts_;  // attempts, initial time
  // Pods popped and not yet given back: updates and deletes that arrive
  // meanwhile are kept here, so the attempt's outcome does not resurrect a
  // deleted pod or requeue a stale one (and the pod is never queued twice).
  struct InFlight {
    std::shared_ptr<const PodInfo> latest;  // null: no update since Pop
    bool deleted = false;
  };
  std::unordered_map<std::string, InFlight> in_flight_;
  // Takes the in-flight entry of `pod`: false when the pod was deleted;
  // otherwise swaps in its latest version, setting *changed when the update
  // touched what scheduling reads.
  bool TakeInFlightLocked(QueuedPod& pod, bool* changed);
  int64_t scheduling_cycle_ = 0;
  int64_t move_request_cycle_ = -1;
  bool closed_ = false;
};

}  // namespace kelpie::scheduler
