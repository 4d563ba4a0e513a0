// Behaviour only the embedded backend has: restart from its SQLite log,
// bounded watcher buffers, automatic compaction, a bounded database file and
// clear errors for damaged files.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "orchestrator/store/embedded_store.h"
#include "tests/testing/test_env.h"

namespace kelpie::store {
namespace {

using std::chrono_literals::operator""ms;
using std::chrono_literals::operator""s;

int64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

class EmbeddedStoreTest : public ::testing::Test {
 protected:
  EmbeddedStoreOptions Options() {
    EmbeddedStoreOptions options;
    options.data_dir = dir_.File("store");
    options.compaction_interval = 0ms;
    return options;
  }
  std::unique_ptr<EmbeddedStore> OpenOrDie(const EmbeddedStoreOptions& options) {
    auto store = EmbeddedStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  std::string DatabasePath() { return dir_.File("store") + "/store.db"; }

  kelpie::testing::TempDir dir_;
};

TEST_F(EmbeddedStoreTest, RestartRebuildsKeysHistoryLeasesAndCompactionPoint) {
  int64_t early_revision, compacted, last_revision, lease_id;
  {
    auto store = OpenOrDie(Options());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put("/a", "a1").ok());
    compacted = store->Put("/a", "a2")->revision;
    early_revision = store->Put("/b", "b1")->revision;
    ASSERT_TRUE(store->Put("/b", "b2").ok());
    ASSERT_TRUE(store->Put("/c", "c1").ok());
    ASSERT_TRUE(store->Delete("/c").ok());
    auto lease = store->GrantLease(60s);
    ASSERT_TRUE(lease.ok());
    lease_id = lease->id;
    ASSERT_TRUE(store->Put("/leased", "x", lease_id).ok());
    ASSERT_TRUE(store->Compact(compacted).ok());
    last_revision = *store->CurrentRevision();
  }
  auto store = OpenOrDie(Options());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->CurrentRevision(), last_revision);
  EXPECT_EQ(store->CompactedRevision(), compacted);
  EXPECT_EQ(store->Get("/a")->value_view(), "a2");
  EXPECT_EQ(store->Get("/b")->value_view(), "b2");
  EXPECT_EQ(store->Get("/b", early_revision)->value_view(), "b1");
  EXPECT_EQ(store->Get("/b")->version, 2);
  EXPECT_EQ(store->Get("/c").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(IsCompacted(store->Get("/a", compacted - 1).status()));
  EXPECT_EQ(store->Get("/leased")->lease, lease_id);
  EXPECT_TRUE(store->KeepAliveLease(lease_id).ok());
  // Revisions continue where they stopped.
  EXPECT_EQ(store->Put("/d", "d1")->revision, last_revision + 1);
  ASSERT_TRUE(store->RevokeLease(lease_id).ok());
  EXPECT_EQ(store->Get("/leased").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(EmbeddedStoreTest, SlowWatcherIsEndedWithoutBlockingWritersOrOtherWatchers) {
  EmbeddedStoreOptions options = Options();
  options.watch_buffer_events = 50;
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);

  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::optional<absl::Status> slow_closed;
  size_t fast_events = 0;
  WatchOptions watch_options;
  watch_options.prefix = "/w/";
  auto slow = store->Watch(watch_options,
                           {[&](WatchBatch) {
                              std::unique_lock lock(mu);
                              cv.wait(lock, [&] { return release; });
                            },
                            [&](absl::Status s) {
                              std::lock_guard lock(mu);
                              slow_closed = s;
                              cv.notify_all();
                            }});
  ASSERT_TRUE(slow.ok());
  auto fast = store->Watch(watch_options, {[&](WatchBatch batch) {
                                             std::lock_guard lock(mu);
                                             fast_events += batch.events.size();
                                             cv.notify_all();
                                           },
                                           nullptr});
  ASSERT_TRUE(fast.ok());

  // The slow consumer is stuck in its first callback; writers carry on.
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(store->Put(absl::StrCat("/w/k", i % 7), "v").ok());
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return fast_events == 300; })) << fast_events;
    release = true;
    cv.notify_all();
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return slow_closed.has_value(); }));
  }
  EXPECT_EQ(slow_closed->code(), absl::StatusCode::kResourceExhausted) << *slow_closed;
  EXPECT_NE(std::string(slow_closed->message()).find("fell more than 50 events behind"),
            std::string::npos)
      << *slow_closed;
}

TEST_F(EmbeddedStoreTest, AutomaticCompactionKeepsOneIntervalOfHistory) {
  EmbeddedStoreOptions options = Options();
  options.compaction_interval = 200ms;
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put("/z", "0").ok());
  int64_t first = store->Put("/a", "1")->revision;
  ASSERT_TRUE(store->Put("/a", "2").ok());
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (store->CompactedRevision() < first && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(store->Put("/b", "tick").ok());
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_GE(store->CompactedRevision(), first);
  EXPECT_TRUE(IsCompacted(store->Get("/a", first - 1).status()));
  EXPECT_EQ(store->Get("/a")->value_view(), "2");
}

TEST_F(EmbeddedStoreTest, DatabaseFileStaysBoundedUnderChurn) {
  auto store = OpenOrDie(Options());
  ASSERT_NE(store, nullptr);
  const std::string value(1024, 'v');
  std::mutex mu;
  std::condition_variable cv;
  int pending = 0;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 5000; ++i) {
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return pending < 256; });
        ++pending;
      }
      store->PutAsync(absl::StrCat("/churn/", i % 50), value, 0, [&](absl::StatusOr<WriteResult> r) {
        EXPECT_TRUE(r.ok()) << r.status();
        std::lock_guard lock(mu);
        --pending;
        cv.notify_all();
      });
    }
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return pending == 0; });
    }
    ASSERT_TRUE(store->Compact(*store->CurrentRevision()).ok());
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (store->compaction_in_progress() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_FALSE(store->compaction_in_progress());
  }
  // 20,000 writes of 1 KiB (20 MiB of history); 50 live keys remain.
  int64_t bytes = FileSize(DatabasePath()) + FileSize(DatabasePath() + "-wal");
  EXPECT_LT(bytes, 4 * 1024 * 1024) << "database and WAL are " << bytes << " bytes";
  RangeResult all = *store->Range("/churn/", {});
  EXPECT_EQ(all.count, 50);
}

TEST_F(EmbeddedStoreTest, WalStaysBoundedUnderSustainedWrites) {
  auto store = OpenOrDie(Options());
  ASSERT_NE(store, nullptr);
  const std::string value(1024, 'w');
  std::mutex mu;
  std::condition_variable cv;
  int pending = 0;
  int64_t largest_wal = 0;
  // About 50 MiB of log with no pause for a passive checkpoint to catch up.
  for (int i = 0; i < 50000; ++i) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return pending < 256; });
      ++pending;
    }
    store->PutAsync(absl::StrCat("/sustained/", i), value, 0, [&](absl::StatusOr<WriteResult> r) {
      EXPECT_TRUE(r.ok()) << r.status();
      std::lock_guard lock(mu);
      --pending;
      cv.notify_all();
    });
    if (i % 500 == 0) largest_wal = std::max(largest_wal, FileSize(DatabasePath() + "-wal"));
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return pending == 0; });
  EXPECT_LT(largest_wal, 48 * 1024 * 1024) << "the WAL reached " << largest_wal << " bytes";
}

class DamagedDatabaseTest : public EmbeddedStoreTest {
 protected:
  void SetUp() override {
    auto store = OpenOrDie(Options());
    ASSERT_NE(store, nullptr);
    std::mutex mu;
    std::condition_variable cv;
    int done = 0;
    for (int i = 0; i < 2000; ++i) {
      store->PutAsync(absl::StrCat("/data/", i), std::string(1024, 'd'), 0,
                      [&](absl::StatusOr<WriteResult> r) {
                        EXPECT_TRUE(r.ok()) << r.status();
                        std::lock_guard lock(mu);
                        ++done;
                        cv.notify_all();
                      });
    }
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done == 2000; });
  }
  void ExpectOpenFailsNamingTheFile() {
    auto store = EmbeddedStore::Open(Options());
    ASSERT_FALSE(store.ok()) << "a damaged database opened";
    EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
    EXPECT_NE(std::string(store.status().message()).find(DatabasePath()), std::string::npos)
        << store.status();
  }
};

TEST_F(DamagedDatabaseTest, TruncatedFileIsAClearStartupError) {
  int64_t size = FileSize(DatabasePath());
  ASSERT_GT(size, 1024 * 1024);
  ASSERT_EQ(::truncate(DatabasePath().c_str(), size / 2), 0);
  ExpectOpenFailsNamingTheFile();
}

TEST_F(DamagedDatabaseTest, EmptiedFileIsAClearStartupError) {
  ASSERT_EQ(::truncate(DatabasePath().c_str(), 0), 0);
  ExpectOpenFailsNamingTheFile();
}

TEST_F(DamagedDatabaseTest, OverwrittenPagesAreAClearStartupError) {
  {
    std::fstream f(DatabasePath(), std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good());
    // Scribble over interior pages (page size 4096), keeping the header.
    std::string garbage(4096 * 8, '\x5a');
    f.seekp(4096 * 3);
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  ExpectOpenFailsNamingTheFile();
}

TEST_F(DamagedDatabaseTest, ForeignFileIsAClearStartupError) {
  {
    std::ofstream f(DatabasePath(), std::ios::binary | std::ios::trunc);
    f << std::string(8192, 'n');
  }
  ExpectOpenFailsNamingTheFile();
}

}  // namespace
}  // namespace kelpie::store
