#include "orchestrator/store/watch_hub.h"

#include <optional>

#include "absl/strings/str_cat.h"

namespace kelpie::store {

class WatchHub::Watcher {
 public:
  Watcher(const WatchOptions& options, WatchConsumer consumer)
      : prefix(options.prefix),
        end(PrefixEnd(options.prefix)),
        prev_kv(options.prev_kv),
        progress_notify(options.progress_notify),
        progress_interval(options.progress_interval),
        consumer(std::move(consumer)),
        last_sent(std::chrono::steady_clock::now()) {}

  bool Matches(const std::string& key) const {
    return key.compare(0, prefix.size(), prefix) == 0 && (end.empty() || key < end);
  }

  struct Pending {
    std::shared_ptr<const std::vector<Event>> events;  // null: progress notification
    int64_t revision = 0;
  };

  const std::string prefix;
  const std::string end;
  const bool prev_kv;
  const bool progress_notify;
  const std::chrono::milliseconds progress_interval;
  const WatchConsumer consumer;

  std::mutex mu;
  std::deque<Pending> queue;
  size_t queued_events = 0;
  bool scheduled = false;  // in the ready queue or being delivered
  bool closed = false;     // nothing more is delivered
  std::optional<absl::Status> close_status;
  bool in_callback = false;
  std::thread::id callback_thread;
  std::condition_variable idle;
  std::chrono::steady_clock::time_point last_sent;
};

class WatchHub::Handle : public WatchHandle {
 public:
  explicit Handle(std::shared_ptr<Watcher> watcher) : watcher_(std::move(watcher)) {}
  ~Handle() override { Cancel(); }

  void Cancel() override {
    Watcher& w = *watcher_;
    std::unique_lock lock(w.mu);
    w.closed = true;
    w.close_status.reset();
    w.queue.clear();
    w.queued_events = 0;
    // A callback may cancel its own watch; otherwise wait for a running
    // callback so none runs after Cancel() returns.
    if (w.callback_thread != std::this_thread::get_id()) {
      w.idle.wait(lock, [&] { return !w.in_callback; });
    }
  }

 private:
  std::shared_ptr<Watcher> watcher_;
};

WatchHub::WatchHub(Options options) : options_(options) {
  for (int i = 0; i < std::max(1, options_.delivery_threads); ++i) {
    delivery_threads_.emplace_back([this] { DeliveryLoop(); });
  }
  progress_thread_ = std::thread([this] { ProgressLoop(); });
}

WatchHub::~WatchHub() {
  CloseAll(absl::UnavailableError("the store is shutting down"));
  {
    std::lock_guard lock(ready_mu_);
    stopping_ = true;
  }
  ready_cv_.notify_all();
  stop_cv_.notify_all();
  for (std::thread& t : delivery_threads_) t.join();
  progress_thread_.join();
}

std::unique_ptr<WatchHandle> WatchHub::Add(const WatchOptions& options, WatchConsumer consumer,
                                           std::vector<Event> catch_up, int64_t revision) {
  auto watcher = std::make_shared<Watcher>(options, std::move(consumer));
  current_revision_ = std::max(current_revision_, revision);
  if (!catch_up.empty()) {
    std::lock_guard lock(watcher->mu);
    // History is not counted against the bound: only falling behind live
    // traffic ends a watch.
    watcher->queue.push_back(
        {std::make_shared<const std::vector<Event>>(std::move(catch_up)), revision});
    watcher->scheduled = true;
    Schedule(watcher);
  }
  watchers_.push_back(watcher);
  return std::make_unique<Handle>(std::move(watcher));
}

void WatchHub::Publish(std::shared_ptr<const std::vector<Event>> events, int64_t revision) {
  current_revision_ = revision;
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    const std::shared_ptr<Watcher>& w = *it;
    size_t matching = 0;
    for (const Event& e : *events) matching += w->Matches(e.kv.key) ? 1 : 0;
    std::lock_guard lock(w->mu);
    if (w->closed) {
      it = watchers_.erase(it);
      continue;
    }
    ++it;
    if (matching == 0 || w->close_status) continue;
    if (w->queued_events + matching > options_.buffer_events) {
      w->queue.clear();
      w->queued_events = 0;
      w->close_status = absl::ResourceExhaustedError(absl::StrCat(
          "watch on \"", w->prefix, "\" ended: its consumer fell more than ",
          options_.buffer_events, " events behind (at revision ", revision,
          "); list again and watch from the listed revision"));
    } else {
      w->queue.push_back({events, revision});
      w->queued_events += matching;
    }
    if (!w->scheduled) {
      w->scheduled = true;
      Schedule(w);
    }
  }
}

void WatchHub::CloseAll(const absl::Status& status) {
  std::lock_guard hub_lock(mu_);
  for (const std::shared_ptr<Watcher>& w : watchers_) {
    std::lock_guard lock(w->mu);
    if (w->closed || w->close_status) continue;
    w->queue.clear();
    w->queued_events = 0;
    w->close_status = status;
    if (!w->scheduled) {
      w->scheduled = true;
      Schedule(w);
    }
  }
  watchers_.clear();
}

size_t WatchHub::watcher_count() {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& w : watchers_) {
    std::lock_guard wl(w->mu);
    n += w->closed ? 0 : 1;
  }
  return n;
}

void WatchHub::Schedule(const std::shared_ptr<Watcher>& watcher) {
  {
    std::lock_guard lock(ready_mu_);
    ready_.push_back(watcher);
  }
  ready_cv_.notify_one();
}

void WatchHub::DeliveryLoop() {
  for (;;) {
    std::shared_ptr<Watcher> w;
    {
      std::unique_lock lock(ready_mu_);
      ready_cv_.wait(lock, [&] { return stopping_ || !ready_.empty(); });
      if (ready_.empty()) return;
      w = std::move(ready_.front());
      ready_.pop_front();
    }
    std::unique_lock lock(w->mu);
    if (w->closed) {
      w->scheduled = false;
      continue;
    }
    WatchBatch batch;
    bool progress = false;
    for (const Watcher::Pending& p : w->queue) {
      batch.revision = std::max(batch.revision, p.revision);
      if (!p.events) {
        progress = true;
        continue;
      }
      for (const Event& e : *p.events) {
        if (!w->Matches(e.kv.key)) continue;
        batch.events.push_back(e);
        if (!w->prev_kv) batch.events.back().prev_kv.reset();
      }
    }
    w->queue.clear();
    w->queued_events = 0;
    std::optional<absl::Status> close = std::move(w->close_status);
    w->close_status.reset();
    if (close) w->closed = true;
    w->in_callback = true;
    w->callback_thread = std::this_thread::get_id();
    lock.unlock();

    if (!batch.events.empty() || (progress && !close)) w->consumer.on_events(std::move(batch));
    if (close && w->consumer.on_close) w->consumer.on_close(*close);

    lock.lock();
    w->in_callback = false;
    w->callback_thread = std::thread::id();
    w->last_sent = std::chrono::steady_clock::now();
    w->idle.notify_all();
    if (!w->closed && (!w->queue.empty() || w->close_status)) {
      Schedule(w);  // stays scheduled
    } else {
      w->scheduled = false;
    }
  }
}

void WatchHub::ProgressLoop() {
  for (;;) {
    {
      std::unique_lock lock(ready_mu_);
      if (stop_cv_.wait_for(lock, std::chrono::milliseconds(50), [&] { return stopping_; })) {
        return;
      }
    }
    std::lock_guard hub_lock(mu_);
    auto now = std::chrono::steady_clock::now();
    for (const std::shared_ptr<Watcher>& w : watchers_) {
      if (!w->progress_notify) continue;
      std::lock_guard lock(w->mu);
      if (w->closed || w->scheduled || now - w->last_sent < w->progress_interval) continue;
      w->queue.push_back({nullptr, current_revision_});
      w->scheduled = true;
      w->last_sent = now;
      Schedule(w);
    }
  }
}

}  // namespace kelpie::store
