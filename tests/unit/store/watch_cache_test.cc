// The watch cache in front of a real etcd: reads and watches are served
// from memory, consistently, and fall back to etcd only where the cache
// cannot answer. (Its behaviour equals the backend's: the conformance suite
// runs against it too.)
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "orchestrator/store/etcd_store.h"
#include "orchestrator/store/watch_cache.h"
#include "tests/testing/test_env.h"
#include "tests/unit/store/etcd_process.h"

namespace kelpie::store {
namespace {

using namespace std::chrono_literals;

class WatchCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto etcd = testing::EtcdProcess::Start(dir_.File("etcd"));
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = std::move(*etcd);
    EtcdStoreOptions options;
    options.endpoints = {etcd_->endpoint()};
    auto backend = EtcdStore::Open(options);
    ASSERT_TRUE(backend.ok()) << backend.status();
    WatchCacheOptions cache_options;
    cache_options.history_events = 5;
    // Long enough that only an on-demand progress request can explain a
    // prompt consistent read.
    cache_options.backend_progress_interval = 30s;
    cache_ = std::make_unique<WatchCachedStore>(std::move(*backend), cache_options);
  }

  kelpie::testing::TempDir dir_;
  std::unique_ptr<testing::EtcdProcess> etcd_;
  std::unique_ptr<WatchCachedStore> cache_;
};

TEST_F(WatchCacheTest, ConsistentListsAfterWritesElsewhereAreServedFromMemory) {
  ASSERT_TRUE(cache_->Put("/registry/pods/ns/a", "1").ok());
  auto first = cache_->Range("/registry/pods/", {});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->count, 1);
  // Writes to another resource move the store's revision; the pods cache
  // learns it is still current through a progress request, not by waiting
  // for the periodic one.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(cache_->Put(absl::StrCat("/registry/configmaps/ns/c", i), "x").ok());
  auto current = cache_->CurrentRevision();
  ASSERT_TRUE(current.ok());
  auto start = std::chrono::steady_clock::now();
  auto second = cache_->Range("/registry/pods/ns/", {});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_GE(second->revision, *current);
  EXPECT_EQ(second->count, 1);
  // Reads its own write at once.
  ASSERT_TRUE(cache_->Put("/registry/pods/ns/b", "2").ok());
  auto third = cache_->Range("/registry/pods/", {});
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->count, 2);
  auto stats = cache_->stats();
  EXPECT_EQ(stats.ranges_from_cache, 3u);
  EXPECT_EQ(stats.ranges_from_backend, 0u);
  EXPECT_EQ(cache_->cached_resources(), 1u);  // configmaps were written, never listed

  // A single key is read from etcd.
  EXPECT_TRUE(cache_->Get("/registry/pods/ns/a").ok());
  EXPECT_EQ(cache_->stats().ranges_from_cache, 3u);
}

TEST_F(WatchCacheTest, ManyWatchersShareOneBackendWatchAndOldStartsGoToTheBackend) {
  auto base = cache_->Put("/registry/pods/ns/seed", "0");
  ASSERT_TRUE(base.ok());
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<int> delivered{0};
  std::vector<std::unique_ptr<WatchHandle>> handles;
  constexpr int kWatchers = 200;
  for (int i = 0; i < kWatchers; ++i) {
    WatchOptions options;
    options.prefix = "/registry/pods/";
    options.start_revision = base->revision + 1;
    auto handle = cache_->Watch(options, {[&](WatchBatch batch) {
                                            delivered += static_cast<int>(batch.events.size());
                                            cv.notify_all();
                                          },
                                          [](absl::Status) {}});
    ASSERT_TRUE(handle.ok()) << handle.status();
    handles.push_back(std::move(*handle));
  }
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cache_->Put(absl::StrCat("/registry/pods/ns/p", i), "v").ok());
  {
    std::unique_lock lock(mu);
    cv.wait_for(lock, 10s, [&] { return delivered.load() == 3 * kWatchers; });
  }
  EXPECT_EQ(delivered.load(), 3 * kWatchers);
  EXPECT_EQ(cache_->stats().watches_from_cache, static_cast<uint64_t>(kWatchers));

  // History holds 5 events: a watch from before them is etcd's to serve,
  // and it still sees every change since.
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(cache_->Put("/registry/pods/ns/churn", absl::StrCat(i)).ok());
  std::atomic<int> old_events{0};
  WatchOptions old;
  old.prefix = "/registry/pods/";
  old.start_revision = base->revision + 1;
  auto old_watch = cache_->Watch(old, {[&](WatchBatch batch) {
                                         old_events += static_cast<int>(batch.events.size());
                                         cv.notify_all();
                                       },
                                       [](absl::Status) {}});
  ASSERT_TRUE(old_watch.ok());
  {
    std::unique_lock lock(mu);
    cv.wait_for(lock, 10s, [&] { return old_events.load() == 9; });
  }
  EXPECT_EQ(old_events.load(), 9);
  EXPECT_EQ(cache_->stats().watches_from_backend, 1u);
  handles.clear();
}

}  // namespace
}  // namespace kelpie::store
