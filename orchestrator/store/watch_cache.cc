#include "orchestrator/store/watch_cache.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace kelpie::store {
namespace {

using Clock = std::chrono::steady_clock;

// "/registry/pods/ns/" -> "/registry/pods/"; "" when the prefix is not a
// folder (ending in '/') at least two segments deep.
std::string ResourceOf(std::string_view prefix) {
  if (prefix.size() < 4 || prefix.front() != '/' || prefix.back() != '/') return "";
  size_t second = prefix.find('/', 1);
  if (second == std::string_view::npos || second == 1) return "";
  size_t third = prefix.find('/', second + 1);
  if (third == std::string_view::npos || third == second + 1) return "";
  return std::string(prefix.substr(0, third + 1));
}

bool HasPrefix(std::string_view key, std::string_view prefix) {
  return key.size() >= prefix.size() && key.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

class WatchCachedStore::ResourceCache : public std::enable_shared_from_this<ResourceCache> {
 public:
  ResourceCache(Store& backend, std::string resource, const WatchCacheOptions& options)
      : backend_(backend), resource_(std::move(resource)), options_(options) {}

  // Reads the resource and starts the one backend watch that keeps it
  // current.
  absl::Status Start() {
    auto page = backend_.Range(resource_, {});
    if (!page.ok()) return page.status();
    {
      std::lock_guard lock(mu_);
      for (auto& kv : page->kvs) objects_.emplace(kv.key, std::move(kv));
      revision_ = floor_ = page->revision;
    }
    WatchOptions wo;
    wo.prefix = resource_;
    wo.start_revision = page->revision + 1;
    wo.prev_kv = true;
    wo.progress_notify = true;
    wo.progress_interval = options_.backend_progress_interval;
    std::weak_ptr<ResourceCache> weak = weak_from_this();
    WatchConsumer consumer{[weak](WatchBatch batch) {
                             if (auto self = weak.lock()) self->OnBackendBatch(std::move(batch));
                           },
                           [weak](absl::Status status) {
                             if (auto self = weak.lock()) self->OnBackendClose(std::move(status));
                           }};
    auto handle = backend_.Watch(wo, std::move(consumer));
    if (!handle.ok()) return handle.status();
    std::lock_guard lock(mu_);
    backend_watch_ = std::move(*handle);
    return absl::OkStatus();
  }

  // Ends the backend watch and every watch served from this cache.
  void Stop(const absl::Status& why) {
    std::shared_ptr<WatchHandle> backend_watch;
    {
      std::lock_guard lock(mu_);
      backend_watch = std::move(backend_watch_);
    }
    if (backend_watch) backend_watch->Cancel();
    CloseAll(why);
  }

  bool broken() {
    std::lock_guard lock(mu_);
    return broken_;
  }

  // Serves a folder range from memory; sets *served = false when the
  // backend must answer instead (older revision, or the cache could not
  // catch up in time).
  absl::StatusOr<RangeResult> Range(std::string_view prefix, const RangeOptions& options, bool* served) {
    *served = false;
    if (options.revision == 0) {
      auto current = backend_.CurrentRevision();
      if (!current.ok()) return current.status();
      if (!WaitFor(*current)) return RangeResult{};
    }
    std::lock_guard lock(mu_);
    if (broken_ || (options.revision != 0 && options.revision != revision_)) return RangeResult{};
    *served = true;
    RangeResult result;
    result.revision = revision_;
    std::string start = std::max(std::string(prefix), options.start_key);
    for (auto it = objects_.lower_bound(start); it != objects_.end() && HasPrefix(it->first, prefix); ++it) {
      ++result.count;
      if (options.count_only) continue;
      if (options.limit > 0 && static_cast<int64_t>(result.kvs.size()) == options.limit) {
        if (!result.more) {
          result.more = true;
          result.next_key = it->first;
        }
        continue;
      }
      result.kvs.push_back(it->second);
    }
    return result;
  }

  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(const WatchOptions& options, WatchConsumer consumer,
                                                     bool* served) {
    *served = false;
    int64_t start = options.start_revision;
    if (start == 0) {
      // "Changes after now": now is the backend's newest revision.
      auto current = backend_.CurrentRevision();
      if (!current.ok()) return current.status();
      if (!WaitFor(*current)) return std::unique_ptr<WatchHandle>();
      start = *current + 1;
    }
    std::lock_guard lock(mu_);
    // Starts before the window: only the backend has that history.
    if (broken_ || start - 1 < floor_) return std::unique_ptr<WatchHandle>();
    *served = true;
    auto watcher = std::make_shared<Watcher>();
    watcher->id = next_id_++;
    watcher->prefix = options.prefix;
    watcher->prev_kv = options.prev_kv;
    watcher->progress_notify = options.progress_notify;
    watcher->progress_interval = options.progress_interval;
    watcher->next_revision = start;
    watcher->last_sent = Clock::now();
    watcher->consumer = std::move(consumer);
    std::vector<Event> replay;
    for (const Event& ev : history_) {
      if (ev.kv.mod_revision >= start && HasPrefix(ev.kv.key, watcher->prefix)) replay.push_back(ev);
    }
    watchers_.emplace(watcher->id, watcher);
    if (!replay.empty()) Deliver(*watcher, std::move(replay), revision_);
    return std::unique_ptr<WatchHandle>(std::make_unique<Handle>(weak_from_this(), watcher->id));
  }

  // Progress notifications for watchers that asked for them.
  void Tick(Clock::time_point now) {
    std::lock_guard lock(mu_);
    if (broken_) return;
    for (auto& [id, w] : Snapshot()) {
      if (w->cancelled || !w->progress_notify || now - w->last_sent < w->progress_interval) continue;
      if (w->next_revision > revision_ + 1) continue;  // waiting for a future revision
      w->last_sent = now;
      w->consumer.on_events(WatchBatch{{}, revision_});
    }
  }

 private:
  struct Watcher {
    uint64_t id = 0;
    std::string prefix;
    bool prev_kv = true;
    bool progress_notify = false;
    std::chrono::milliseconds progress_interval{0};
    int64_t next_revision = 0;
    Clock::time_point last_sent;
    WatchConsumer consumer;
    bool cancelled = false;
  };

  class Handle : public WatchHandle {
   public:
    Handle(std::weak_ptr<ResourceCache> cache, uint64_t id) : cache_(std::move(cache)), id_(id) {}
    ~Handle() override { Cancel(); }
    void Cancel() override {
      if (auto cache = cache_.lock()) cache->Remove(id_);
      cache_.reset();
    }
    bool RequestProgress() override { return false; }

   private:
    std::weak_ptr<ResourceCache> cache_;
    uint64_t id_;
  };

  // Watchers stay alive while a delivery walks them, even if one cancels
  // itself from inside its callback.
  std::vector<std::pair<uint64_t, std::shared_ptr<Watcher>>> Snapshot() {
    return {watchers_.begin(), watchers_.end()};
  }

  void Remove(uint64_t id) {
    // Taking the lock waits out a delivery in progress on another thread,
    // so no callback runs after Cancel() returns.
    std::lock_guard lock(mu_);
    auto it = watchers_.find(id);
    if (it == watchers_.end()) return;
    it->second->cancelled = true;
    watchers_.erase(it);
  }

  void Deliver(Watcher& w, std::vector<Event> events, int64_t revision) {
    if (!w.prev_kv) {
      for (auto& e : events) e.prev_kv.reset();
    }
    w.next_revision = events.back().kv.mod_revision + 1;
    w.last_sent = Clock::now();
    w.consumer.on_events(WatchBatch{std::move(events), revision});
  }

  void OnBackendBatch(WatchBatch batch) {
    std::lock_guard lock(mu_);
    for (const Event& ev : batch.events) {
      if (ev.type == Event::Type::kPut) {
        objects_[ev.kv.key] = ev.kv;
      } else {
        objects_.erase(ev.kv.key);
      }
      history_.push_back(ev);
      revision_ = std::max(revision_, ev.kv.mod_revision);
    }
    revision_ = std::max(revision_, batch.revision);
    while (history_.size() > options_.history_events) {
      floor_ = std::max(floor_, history_.front().kv.mod_revision);
      history_.pop_front();
    }
    if (!batch.events.empty()) {
      for (auto& [id, w] : Snapshot()) {
        if (w->cancelled) continue;
        std::vector<Event> mine;
        for (const Event& ev : batch.events) {
          if (ev.kv.mod_revision >= w->next_revision && HasPrefix(ev.kv.key, w->prefix)) mine.push_back(ev);
        }
        if (!mine.empty()) Deliver(*w, std::move(mine), batch.revision);
      }
    }
    cv_.notify_all();
  }

  void OnBackendClose(absl::Status status) {
    {
      std::lock_guard lock(mu_);
      broken_ = true;
      cv_.notify_all();
    }
    spdlog::warn("watch cache for {} lost its backend watch: {}", resource_, status.ToString());
    CloseAll(absl::UnavailableError(absl::StrCat("the watch cache for ", resource_,
                                                 " is being rebuilt: ", status.message())));
  }

  void CloseAll(const absl::Status& why) {
    std::lock_guard lock(mu_);
    broken_ = true;
    for (auto& [id, w] : Snapshot()) {
      if (w->cancelled) continue;
      w->cancelled = true;
      if (w->consumer.on_close) w->consumer.on_close(why);
    }
    watchers_.clear();
  }

  // Waits until the cache has applied `target`; asks the backend watch for
  // a progress notification when nothing in this resource changed.
  bool WaitFor(int64_t target) {
    auto deadline = Clock::now() + options_.consistency_timeout;
    std::unique_lock lock(mu_);
    bool can_request = true;
    auto next_request = Clock::now();
    while (revision_ < target && !broken_) {
      auto now = Clock::now();
      if (now >= deadline) return false;
      if (can_request && backend_watch_ && now >= next_request) {
        next_request = now + std::chrono::milliseconds(100);
        // Outside the lock: the backend may be delivering to us.
        std::shared_ptr<WatchHandle> backend_watch = backend_watch_;
        lock.unlock();
        can_request = backend_watch->RequestProgress();
        lock.lock();
        // A backend that cannot report progress on demand gets a short
        // wait; the caller then reads the backend.
        if (!can_request) deadline = std::min(deadline, now + std::chrono::milliseconds(50));
        continue;
      }
      cv_.wait_for(lock, std::chrono::milliseconds(10));
    }
    return !broken_;
  }

  Store& backend_;
  const std::string resource_;
  const WatchCacheOptions options_;

  // Recursive: a consumer may cancel its own watch from its callback.
  std::recursive_mutex mu_;
  std::condition_variable_any cv_;
  std::map<std::string, KeyValue, std::less<>> objects_;
  int64_t revision_ = 0;  // objects_ is the resource at this revision
  int64_t floor_ = 0;     // history_ holds every event after this revision
  std::deque<Event> history_;
  std::map<uint64_t, std::shared_ptr<Watcher>> watchers_;
  uint64_t next_id_ = 1;
  std::shared_ptr<WatchHandle> backend_watch_;
  bool broken_ = false;
};

WatchCachedStore::WatchCachedStore(std::unique_ptr<Store> backend, WatchCacheOptions options)
    : backend_(std::move(backend)), options_(options) {
  ticker_ = std::thread([this] { TickLoop(); });
}

WatchCachedStore::~WatchCachedStore() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  ticker_.join();
  std::map<std::string, std::shared_ptr<ResourceCache>, std::less<>> caches;
  {
    std::lock_guard lock(mu_);
    caches.swap(caches_);
  }
  for (auto& [name, cache] : caches) cache->Stop(absl::UnavailableError("the store is shutting down"));
}

void WatchCachedStore::TickLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, std::chrono::milliseconds(50));
    if (stopping_) break;
    std::vector<std::shared_ptr<ResourceCache>> caches;
    for (auto& [name, cache] : caches_) caches.push_back(cache);
    lock.unlock();
    auto now = Clock::now();
    for (auto& cache : caches) cache->Tick(now);
    lock.lock();
  }
}

std::shared_ptr<WatchCachedStore::ResourceCache> WatchCachedStore::CacheFor(std::string_view prefix) {
  std::string resource = ResourceOf(prefix);
  if (resource.empty()) return nullptr;
  std::shared_ptr<ResourceCache> stale;
  {
    std::lock_guard lock(mu_);
    auto it = caches_.find(resource);
    if (it != caches_.end()) {
      if (!it->second->broken()) return it->second;
      stale = std::move(it->second);
      caches_.erase(it);
    }
  }
  if (stale) stale->Stop(absl::UnavailableError("the watch cache was rebuilt"));
  auto cache = std::make_shared<ResourceCache>(*backend_, resource, options_);
  if (auto st = cache->Start(); !st.ok()) {
    spdlog::warn("watch cache for {} not available: {}", resource, st.ToString());
    return nullptr;
  }
  std::lock_guard lock(mu_);
  // Another thread may have built one meanwhile: keep the first.
  auto [it, inserted] = caches_.emplace(resource, cache);
  if (!inserted) {
    auto keep = it->second;
    cache->Stop(absl::UnavailableError("duplicate watch cache"));
    return keep;
  }
  return cache;
}

absl::StatusOr<RangeResult> WatchCachedStore::Range(std::string_view prefix, const RangeOptions& options) {
  if (auto cache = CacheFor(prefix)) {
    bool served = false;
    auto result = cache->Range(prefix, options, &served);
    if (!result.ok() || served) {
      std::lock_guard lock(mu_);
      ++stats_.ranges_from_cache;
      return result;
    }
  }
  {
    std::lock_guard lock(mu_);
    ++stats_.ranges_from_backend;
  }
  return backend_->Range(prefix, options);
}

absl::StatusOr<std::unique_ptr<WatchHandle>> WatchCachedStore::Watch(const WatchOptions& options,
                                                                     WatchConsumer consumer) {
  // A start the backend has compacted away fails there, with its error.
  bool compacted = options.start_revision != 0 && options.start_revision <= backend_->CompactedRevision();
  if (!compacted) {
    if (auto cache = CacheFor(options.prefix)) {
      bool served = false;
      // The consumer is only moved from when the cache serves the watch.
      auto handle = cache->Watch(options, consumer, &served);
      if (!handle.ok() || served) {
        std::lock_guard lock(mu_);
        ++stats_.watches_from_cache;
        return handle;
      }
    }
  }
  {
    std::lock_guard lock(mu_);
    ++stats_.watches_from_backend;
  }
  return backend_->Watch(options, std::move(consumer));
}

void WatchCachedStore::TxnAsync(TxnRequest request, Callback<TxnResult> done) {
  backend_->TxnAsync(std::move(request), std::move(done));
}
absl::Status WatchCachedStore::Compact(int64_t revision) { return backend_->Compact(revision); }
absl::StatusOr<int64_t> WatchCachedStore::CurrentRevision() { return backend_->CurrentRevision(); }
int64_t WatchCachedStore::CompactedRevision() { return backend_->CompactedRevision(); }
absl::StatusOr<LeaseInfo> WatchCachedStore::GrantLease(std::chrono::seconds ttl) { return backend_->GrantLease(ttl); }
absl::Status WatchCachedStore::RevokeLease(int64_t id) { return backend_->RevokeLease(id); }
absl::StatusOr<LeaseInfo> WatchCachedStore::KeepAliveLease(int64_t id) { return backend_->KeepAliveLease(id); }

WatchCachedStore::Stats WatchCachedStore::stats() {
  std::lock_guard lock(mu_);
  return stats_;
}

size_t WatchCachedStore::cached_resources() {
  std::lock_guard lock(mu_);
  return caches_.size();
}

}  // namespace kelpie::store
