// A Store decorator that serves lists and watches from memory, as
// kube-apiserver's watch cache does: per resource (the first two segments of
// a key, "/registry/pods/"), one backend watch keeps the current objects and
// a bounded window of recent events, so thousands of watchers and large
// lists cost the backend one watch stream instead of one stream or one full
// read each.
//
// What the cache serves:
//   - Range over a folder prefix (ending in '/') at the newest revision: a
//     consistent read. The cache first learns the backend's current revision
//     and waits until it has applied everything up to it (asking the backend
//     watch for a progress notification where the backend can), so a client
//     always reads its own writes. Ranges pinned to the revision the cache
//     holds (later pages of a listing) are served too.
//   - Watch over a folder prefix from any revision inside the event window.
// Everything else (single-key reads, older revisions, writes, leases,
// compaction) goes to the backend unchanged, so the decorator behaves as the
// backend does, only faster where it matters.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "orchestrator/store/store.h"

namespace kelpie::store {

struct WatchCacheOptions {
  // Events kept per resource for watches that start in the past.
  size_t history_events = 10000;
  // How long a consistent read waits for the cache to catch up with the
  // backend before reading the backend instead.
  std::chrono::milliseconds consistency_timeout{std::chrono::seconds(2)};
  // How often the backend watch reports progress when nothing changes.
  std::chrono::milliseconds backend_progress_interval{std::chrono::seconds(1)};
};

class WatchCachedStore : public Store {
 public:
  WatchCachedStore(std::unique_ptr<Store> backend, WatchCacheOptions options = {});
  ~WatchCachedStore() override;

  absl::StatusOr<RangeResult> Range(std::string_view prefix, const RangeOptions& options) override;
  void TxnAsync(TxnRequest request, Callback<TxnResult> done) override;
  absl::Status Compact(int64_t revision) override;
  absl::StatusOr<int64_t> CurrentRevision() override;
  int64_t CompactedRevision() override;
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(const WatchOptions& options,
                                                     WatchConsumer consumer) override;
  absl::StatusOr<LeaseInfo> GrantLease(std::chrono::seconds ttl) override;
  absl::Status RevokeLease(int64_t id) override;
  absl::StatusOr<LeaseInfo> KeepAliveLease(int64_t id) override;

  // Resources with a cache so far, and where reads were served from (for
  // tests and metrics).
  size_t cached_resources();
  struct Stats {
    uint64_t ranges_from_cache = 0;
    uint64_t ranges_from_backend = 0;
    uint64_t watches_from_cache = 0;
    uint64_t watches_from_backend = 0;
  };
  Stats stats();

 private:
  class ResourceCache;

  // The cache for the resource `prefix` belongs to, created on first use;
  // nullptr when the prefix is not a folder under a resource.
  std::shared_ptr<ResourceCache> CacheFor(std::string_view prefix);
  void TickLoop();

  std::unique_ptr<Store> backend_;
  const WatchCacheOptions options_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<ResourceCache>, std::less<>> caches_;
  Stats stats_;
  bool stopping_ = false;
  std::condition_variable stop_cv_;
  std::thread ticker_;
};

}  // namespace kelpie::store
