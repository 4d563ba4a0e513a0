// One behaviour, two backends: every test here runs against the embedded
// store and against the etcd backend talking to a real etcd process started
// on loopback for this suite.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "orchestrator/store/embedded_store.h"
#include "orchestrator/store/etcd_store.h"
#include "orchestrator/store/watch_cache.h"
#include "tests/testing/test_env.h"
#include "tests/unit/store/etcd_process.h"

namespace kelpie::store {
namespace {

using std::chrono_literals::operator""ms;
using std::chrono_literals::operator""s;

// Collects watch output for assertions.
class EventRecorder {
 public:
  WatchConsumer Consumer() {
    return WatchConsumer{
        [this](WatchBatch batch) {
          std::lock_guard lock(mu_);
          if (batch.IsProgressNotify()) {
            progress_.push_back(batch.revision);
          } else {
            for (Event& e : batch.events) events_.push_back(std::move(e));
          }
          cv_.notify_all();
        },
        [this](absl::Status status) {
          std::lock_guard lock(mu_);
          closed_ = status;
          cv_.notify_all();
        }};
  }

  // Waits until at least `n` events arrived; returns a copy of them.
  std::vector<Event> WaitForEvents(size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return events_.size() >= n; });
    return events_;
  }
  bool WaitForProgress(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return !progress_.empty(); });
  }
  std::vector<int64_t> progress() {
    std::lock_guard lock(mu_);
    return progress_;
  }
  std::optional<absl::Status> WaitForClose(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return closed_.has_value(); });
    return closed_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> events_;
  std::vector<int64_t> progress_;
  std::optional<absl::Status> closed_;
};

class StoreConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    etcd_dir_ = new kelpie::testing::TempDir();
    auto etcd = testing::EtcdProcess::Start(etcd_dir_->File("etcd"));
    if (etcd.ok()) {
      etcd_ = etcd->release();
    } else {
      etcd_error_ = new absl::Status(etcd.status());
    }
  }
  static void TearDownTestSuite() {
    delete etcd_;  // kills etcd by pid
    etcd_ = nullptr;
    delete etcd_dir_;
    etcd_dir_ = nullptr;
    delete etcd_error_;
    etcd_error_ = nullptr;
  }

  void SetUp() override {
    // Keys of each test live under their own prefix: the etcd server is
    // shared by the suite.
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');
    prefix_ = absl::StrCat("/conformance/", name, "/");
    bool cached = absl::StartsWith(GetParam(), "cached_");
    std::string backend = cached ? GetParam().substr(7) : GetParam();
    if (backend == "embedded") {
      EmbeddedStoreOptions options;
      options.data_dir = dir_.File("store");
      options.compaction_interval = 0ms;
      auto store = EmbeddedStore::Open(options);
      ASSERT_TRUE(store.ok()) << store.status();
      store_ = std::move(*store);
    } else {
      ASSERT_NE(etcd_, nullptr) << "etcd did not start: " << *etcd_error_;
      EtcdStoreOptions options;
      options.endpoints = {etcd_->endpoint()};
      auto store = EtcdStore::Open(options);
      ASSERT_TRUE(store.ok()) << store.status();
      store_ = std::move(*store);
    }
    if (cached) {
      // The watch cache in front of the backend must not change what any
      // test observes.
      WatchCacheOptions options;
      options.history_events = 100;
      store_ = std::make_unique<WatchCachedStore>(std::move(store_), options);
    }
  }

  std::string Key(const std::string& name) const { return prefix_ + name; }

  static kelpie::testing::TempDir* etcd_dir_;
  static testing::EtcdProcess* etcd_;
  static absl::Status* etcd_error_;

  kelpie::testing::TempDir dir_;
  std::string prefix_;
  std::unique_ptr<Store> store_;
};

kelpie::testing::TempDir* StoreConformanceTest::etcd_dir_ = nullptr;
testing::EtcdProcess* StoreConformanceTest::etcd_ = nullptr;
absl::Status* StoreConformanceTest::etcd_error_ = nullptr;

TEST_P(StoreConformanceTest, CreateUpdateDeleteWithCompareAndSwap) {
  auto created = store_->Create(Key("a"), "v1");
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_TRUE(created->kv.has_value());
  EXPECT_EQ(created->kv->version, 1);
  EXPECT_EQ(created->kv->create_revision, created->revision);
  EXPECT_EQ(created->kv->mod_revision, created->revision);

  auto again = store_->Create(Key("a"), "v2");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();

  auto stale = store_->Update(Key("a"), "v2", created->revision + 100);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition) << stale.status();

  auto updated = store_->Update(Key("a"), "v2", created->revision);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_GT(updated->revision, created->revision);
  EXPECT_EQ(updated->kv->version, 2);
  EXPECT_EQ(updated->kv->create_revision, created->revision);
  ASSERT_TRUE(updated->prev_kv.has_value());
  EXPECT_EQ(updated->prev_kv->value_view(), "v1");

  auto got = store_->Get(Key("a"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->value_view(), "v2");
  EXPECT_EQ(got->mod_revision, updated->revision);

  // The old value is still readable at the old revision.
  auto old = store_->Get(Key("a"), created->revision);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->value_view(), "v1");

  auto stale_delete = store_->Delete(Key("a"), created->revision);
  EXPECT_EQ(stale_delete.status().code(), absl::StatusCode::kFailedPrecondition);
  auto deleted = store_->Delete(Key("a"), updated->revision);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->prev_kv->value_view(), "v2");
  EXPECT_EQ(store_->Get(Key("a")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete(Key("a")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Update(Key("a"), "v3", deleted->revision).status().code(),
            absl::StatusCode::kNotFound);

  // Re-creation starts a new life: version 1 again.
  auto recreated = store_->Create(Key("a"), "v4");
  ASSERT_TRUE(recreated.ok()) << recreated.status();
  EXPECT_EQ(recreated->kv->version, 1);
  EXPECT_GT(recreated->revision, deleted->revision);
}

TEST_P(StoreConformanceTest, TransactionAppliesAtOneRevisionOrNotAtAll) {
  auto a = store_->Put(Key("a"), "1");
  ASSERT_TRUE(a.ok());
  TxnRequest txn;
  txn.compares.push_back({Key("a"), Compare::Target::kModRevision, Compare::Result::kEqual,
                          a->revision});
  txn.compares.push_back({Key("b"), Compare::Target::kCreateRevision, Compare::Result::kEqual, 0});
  txn.success = {Op::Put(Key("a"), "2"), Op::Put(Key("b"), "2"), Op::Get(Key("a"))};
  txn.failure = {Op::Get(Key("a"))};
  auto result = store_->Txn(txn);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->succeeded);
  auto ka = store_->Get(Key("a"));
  auto kb = store_->Get(Key("b"));
  ASSERT_TRUE(ka.ok() && kb.ok());
  EXPECT_EQ(ka->mod_revision, result->revision);
  EXPECT_EQ(kb->mod_revision, result->revision);

  // The same transaction again: the compares no longer hold, nothing changes.
  auto second = store_->Txn(txn);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->succeeded);
  ASSERT_EQ(second->results.size(), 1u);
  ASSERT_TRUE(second->results[0].kv.has_value());
  EXPECT_EQ(second->results[0].kv->value_view(), "2");
  EXPECT_EQ(store_->Get(Key("a"))->mod_revision, result->revision);
}

TEST_P(StoreConformanceTest, NoLostUpdateUnderConcurrentWriters) {
  ASSERT_TRUE(store_->Create(Key("counter"), "0").ok());
  constexpr int kThreads = 8;
  constexpr int kIncrements = 40;
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        for (;;) {
          auto current = store_->Get(Key("counter"));
          ASSERT_TRUE(current.ok()) << current.status();
          int value = std::stoi(std::string(current->value_view()));
          auto updated =
              store_->Update(Key("counter"), std::to_string(value + 1), current->mod_revision);
          if (updated.ok()) break;
          ASSERT_EQ(updated.status().code(), absl::StatusCode::kFailedPrecondition)
              << updated.status();
          ++conflicts;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  auto final_value = store_->Get(Key("counter"));
  ASSERT_TRUE(final_value.ok());
  EXPECT_EQ(final_value->value_view(), std::to_string(kThreads * kIncrements));
  EXPECT_EQ(final_value->version, kThreads * kIncrements + 1);
}

TEST_P(StoreConformanceTest, AsyncWritesAllCompleteWithDistinctRevisions) {
  constexpr int kWrites = 500;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int64_t> revisions;
  std::vector<absl::Status> errors;
  for (int i = 0; i < kWrites; ++i) {
    store_->PutAsync(Key(absl::StrCat("k", i % 50)), absl::StrCat("v", i), 0,
                     [&](absl::StatusOr<WriteResult> r) {
                       std::lock_guard lock(mu);
                       if (r.ok()) {
                         revisions.push_back(r->revision);
                       } else {
                         errors.push_back(r.status());
                       }
                       cv.notify_all();
                     });
  }
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return revisions.size() + errors.size() == kWrites; }));
  EXPECT_TRUE(errors.empty()) << errors.front();
  std::sort(revisions.begin(), revisions.end());
  EXPECT_EQ(std::adjacent_find(revisions.begin(), revisions.end()), revisions.end())
      << "two writes got the same revision";
}

TEST_P(StoreConformanceTest, PaginationIsConsistentAtTheFirstPagesRevision) {
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(store_->Put(Key(absl::StrCat("item", 100 + i)), absl::StrCat("orig", i)).ok());
  }
  RangeOptions options;
  options.limit = 10;
  auto page = store_->Range(prefix_, options);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->count, 25);
  EXPECT_TRUE(page->more);
  const int64_t pinned = page->revision;
  std::vector<KeyValue> all = page->kvs;
  // Churn between pages: none of it may show up in the listing.
  ASSERT_TRUE(store_->Delete(Key("item112")).ok());
  ASSERT_TRUE(store_->Put(Key("item113"), "changed").ok());
  ASSERT_TRUE(store_->Put(Key("item150"), "new").ok());
  while (page->more) {
    RangeOptions next;
    next.limit = 10;
    next.revision = pinned;
    next.start_key = page->next_key;
    page = store_->Range(prefix_, next);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->revision, pinned);
    all.insert(all.end(), page->kvs.begin(), page->kvs.end());
  }
  ASSERT_EQ(all.size(), 25u);
  for (int i = 0; i < 25; ++i) {
    EXPECT_EQ(all[static_cast<size_t>(i)].key, Key(absl::StrCat("item", 100 + i)));
    EXPECT_EQ(all[static_cast<size_t>(i)].value_view(), absl::StrCat("orig", i));
  }
  auto now = store_->Range(prefix_, {});
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->count, 25);  // one deleted, one added
}

TEST_P(StoreConformanceTest, WatchDeliversInRevisionOrderAndResumes) {
  EventRecorder live;
  WatchOptions options;
  options.prefix = prefix_;
  auto watch = store_->Watch(options, live.Consumer());
  ASSERT_TRUE(watch.ok()) << watch.status();
  // A write outside the prefix must not be seen.
  ASSERT_TRUE(store_->Put(prefix_.substr(0, prefix_.size() - 1) + "-other", "x").ok());
  std::vector<int64_t> written;
  for (int i = 0; i < 20; ++i) {
    std::string key = Key(absl::StrCat("k", i % 4));
    if (i % 5 == 4) {
      auto d = store_->Delete(key);
      ASSERT_TRUE(d.ok()) << d.status();
      written.push_back(d->revision);
    } else {
      auto p = store_->Put(key, absl::StrCat("v", i));
      ASSERT_TRUE(p.ok()) << p.status();
      written.push_back(p->revision);
    }
  }
  std::vector<Event> events = live.WaitForEvents(20);
  ASSERT_EQ(events.size(), 20u);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].kv.mod_revision, written[i]) << i;
    EXPECT_EQ(events[i].type, i % 5 == 4 ? Event::Type::kDelete : Event::Type::kPut) << i;
  }
  // prev_kv carries the value before each change: k1 was "v1" before
  // write 5, k0 "v0" before its deletion (write 4), and k0 was absent
  // before its re-creation (write 8).
  EXPECT_FALSE(events[0].prev_kv.has_value());
  ASSERT_TRUE(events[5].prev_kv.has_value());
  EXPECT_EQ(events[5].prev_kv->value_view(), "v1");
  ASSERT_TRUE(events[4].prev_kv.has_value());
  EXPECT_EQ(events[4].prev_kv->value_view(), "v0");
  EXPECT_FALSE(events[8].prev_kv.has_value());

  // Resume from the revision of the 10th write: exactly the tail again.
  EventRecorder resumed;
  WatchOptions from;
  from.prefix = prefix_;
  from.start_revision = written[9];
  auto watch2 = store_->Watch(from, resumed.Consumer());
  ASSERT_TRUE(watch2.ok()) << watch2.status();
  std::vector<Event> tail = resumed.WaitForEvents(11);
  ASSERT_EQ(tail.size(), 11u);
  for (size_t i = 0; i < tail.size(); ++i) EXPECT_EQ(tail[i].kv.mod_revision, written[9 + i]);

  // After Cancel nothing more arrives.
  (*watch)->Cancel();
  ASSERT_TRUE(store_->Put(Key("after-cancel"), "x").ok());
  EXPECT_EQ(resumed.WaitForEvents(12).size(), 12u);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(live.WaitForEvents(0, 0ms).size(), 20u);
}

TEST_P(StoreConformanceTest, WatchFromAPastRevisionDuringWritesHasNoGapOrDuplicate) {
  std::mutex mu;
  std::vector<int64_t> written;
  std::atomic<bool> failed{false};
  std::thread writer([&] {
    for (int i = 0; i < 300; ++i) {
      auto put = store_->Put(Key(absl::StrCat("k", i % 10)), absl::StrCat(i));
      if (!put.ok()) {
        failed = true;
        return;
      }
      std::lock_guard lock(mu);
      written.push_back(put->revision);
    }
  });
  int64_t start = 0;
  for (;;) {
    {
      std::lock_guard lock(mu);
      if (written.size() >= 100) {
        start = written[50];
        break;
      }
    }
    std::this_thread::sleep_for(1ms);
  }
  EventRecorder recorder;
  WatchOptions options;
  options.prefix = prefix_;
  options.start_revision = start;
  auto watch = store_->Watch(options, recorder.Consumer());
  ASSERT_TRUE(watch.ok()) << watch.status();
  writer.join();
  ASSERT_FALSE(failed.load());
  std::vector<int64_t> expected(written.begin() + 50, written.end());
  std::vector<Event> events = recorder.WaitForEvents(expected.size());
  std::vector<int64_t> got;
  for (const Event& e : events) got.push_back(e.kv.mod_revision);
  EXPECT_EQ(got, expected);
}

TEST_P(StoreConformanceTest, ProgressNotificationsCarryTheCurrentRevision) {
  auto put = store_->Put(Key("a"), "1");
  ASSERT_TRUE(put.ok());
  EventRecorder recorder;
  WatchOptions options;
  options.prefix = prefix_;
  options.progress_notify = true;
  options.progress_interval = 300ms;
  auto watch = store_->Watch(options, recorder.Consumer());
  ASSERT_TRUE(watch.ok()) << watch.status();
  ASSERT_TRUE(recorder.WaitForProgress(10s));
  EXPECT_GE(recorder.progress().front(), put->revision);
}

TEST_P(StoreConformanceTest, CompactedRevisionsAreGone) {
  auto first = store_->Put(Key("a"), "1");
  auto second = store_->Put(Key("a"), "2");
  auto third = store_->Put(Key("a"), "3");
  ASSERT_TRUE(first.ok() && second.ok() && third.ok());
  ASSERT_TRUE(store_->Compact(second->revision).ok());

  auto old = store_->Get(Key("a"), first->revision);
  EXPECT_EQ(old.status().code(), absl::StatusCode::kOutOfRange) << old.status();
  EXPECT_TRUE(IsCompacted(old.status())) << old.status();
  auto at = store_->Get(Key("a"), second->revision);
  ASSERT_TRUE(at.ok()) << at.status();
  EXPECT_EQ(at->value_view(), "2");

  EventRecorder recorder;
  WatchOptions options;
  options.prefix = prefix_;
  options.start_revision = first->revision;
  auto watch = store_->Watch(options, recorder.Consumer());
  EXPECT_TRUE(IsCompacted(watch.status())) << watch.status();

  options.start_revision = second->revision + 1;
  auto resumed = store_->Watch(options, recorder.Consumer());
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  auto events = recorder.WaitForEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kv.value_view(), "3");

  auto again = store_->Compact(second->revision);
  EXPECT_TRUE(IsCompacted(again)) << again;
  auto future = store_->Compact(third->revision + 1000);
  EXPECT_EQ(future.code(), absl::StatusCode::kInvalidArgument) << future;
  EXPECT_GE(store_->CompactedRevision(), second->revision);
}

TEST_P(StoreConformanceTest, LeaseExpiryAndRevocationDeleteAttachedKeys) {
  auto lease = store_->GrantLease(2s);
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(store_->Put(Key("ephemeral"), "x", lease->id).ok());
  auto got = store_->Get(Key("ephemeral"));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->lease, lease->id);

  EventRecorder recorder;
  WatchOptions options;
  options.prefix = prefix_;
  auto watch = store_->Watch(options, recorder.Consumer());
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(store_->KeepAliveLease(lease->id).ok());
  auto events = recorder.WaitForEvents(1, 15s);
  ASSERT_EQ(events.size(), 1u) << "the lease did not expire";
  EXPECT_EQ(events[0].type, Event::Type::kDelete);
  EXPECT_EQ(store_->Get(Key("ephemeral")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->KeepAliveLease(lease->id).status().code(), absl::StatusCode::kNotFound);

  auto revoked = store_->GrantLease(60s);
  ASSERT_TRUE(revoked.ok());
  ASSERT_TRUE(store_->Put(Key("r1"), "x", revoked->id).ok());
  ASSERT_TRUE(store_->Put(Key("r2"), "x", revoked->id).ok());
  ASSERT_TRUE(store_->RevokeLease(revoked->id).ok());
  EXPECT_EQ(store_->Get(Key("r1")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Get(Key("r2")).status().code(), absl::StatusCode::kNotFound);
  auto unknown = store_->Put(Key("r3"), "x", revoked->id);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound) << unknown.status();
}

TEST_P(StoreConformanceTest, RequestsOverOneAndAHalfMebibytesAreRefused) {
  auto big = store_->Put(Key("big"), std::string(1600 * 1024, 'x'));
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument) << big.status();
  EXPECT_NE(std::string(big.status().message()).find("too large"), std::string::npos);
  auto fits = store_->Put(Key("fits"), std::string(1400 * 1024, 'y'));
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ(store_->Get(Key("fits"))->value_view().size(), 1400u * 1024);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformanceTest, ::testing::Values("embedded", "etcd", "cached_embedded", "cached_etcd"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kelpie::store
