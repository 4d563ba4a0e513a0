// Fans committed events out to the embedded store's watchers. The writer
// calls Publish() after each durable commit; publishing only appends a
// shared batch to the queue of each matching watcher and never waits for a
// consumer. Delivery threads drain the queues into the consumers'
// callbacks, one callback at a time per watcher. A watcher whose queue
// exceeds its bound is ended with kResourceExhausted, so one slow consumer
// costs memory bounded by the limit and never slows writers or other
// watchers' queues.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "orchestrator/store/store.h"

namespace kelpie::store {

class WatchHub {
 public:
  struct Options {
    size_t buffer_events = 10000;  // per watcher
    int delivery_threads = 2;
  };

  explicit WatchHub(Options options);
  ~WatchHub();  // ends every watch with kUnavailable
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Serialises registration against publication: hold it while computing a
  // new watch's catch-up events and calling Add(), and while publishing.
  std::unique_lock<std::mutex> Lock() { return std::unique_lock<std::mutex>(mu_); }

  // Registers a watch (lock held) whose history up to `revision` is
  // `catch_up`; later events come from Publish().
  std::unique_ptr<WatchHandle> Add(const WatchOptions& options, WatchConsumer consumer,
                                   std::vector<Event> catch_up, int64_t revision);
  // Hands the events of one commit (revision order) to the watchers (lock held).
  void Publish(std::shared_ptr<const std::vector<Event>> events, int64_t revision);

  // Ends every watch with `status` (lock not held).
  void CloseAll(const absl::Status& status);

  size_t watcher_count();

 private:
  class Watcher;
  class Handle;

  void Schedule(const std::shared_ptr<Watcher>& watcher);
  void DeliveryLoop();
  void ProgressLoop();

  const Options options_;
  std::mutex mu_;  // watchers_ and current_revision_
  std::list<std::shared_ptr<Watcher>> watchers_;
  int64_t current_revision_ = 0;

  std::mutex ready_mu_;
  std::condition_variable ready_cv_;
  std::condition_variable stop_cv_;  // wakes the progress thread at shutdown
  std::deque<std::shared_ptr<Watcher>> ready_;
  bool stopping_ = false;
  std::vector<std::thread> delivery_threads_;
  std::thread progress_thread_;
};

}  // namespace kelpie::store
