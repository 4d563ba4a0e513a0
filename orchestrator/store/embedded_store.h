// The embedded (default) store backend: every key in an in-memory MVCC
// index, every write durably logged to SQLite before it is acknowledged,
// watches pushed from memory.
//
// Write path: callers enqueue requests; one writer thread takes everything
// queued, applies it to the index as new head revisions (not yet readable),
// writes the rows in one SQLite transaction, commits (fsync), then makes
// the revisions readable, publishes the events and runs the callbacks. So
// concurrent writers share one fsync (group commit), and no reader or watcher
// ever sees a write that could be lost. A failed commit leaves the store
// read-only (kUnavailable for writes) rather than guessing what is on disk.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "orchestrator/store/store.h"

namespace kelpie::store {

class MvccIndex;
class SqliteLog;
class WatchHub;

struct EmbeddedStoreOptions {
  // Folder of the database file (store.db, store.db-wal); created if missing.
  std::string data_dir;
  // History older than one interval is compacted every interval; 0 disables.
  std::chrono::milliseconds compaction_interval{std::chrono::minutes(5)};
  // Events a watcher may lag behind before it is ended.
  size_t watch_buffer_events = 10000;
  int watch_delivery_threads = 2;
  // Keys visited per compaction step between two group commits.
  size_t compaction_keys_per_step = 2000;
};

class EmbeddedStore : public Store {
 public:
  // Opens or creates the store; a damaged database is an error naming the file.
  static absl::StatusOr<std::unique_ptr<EmbeddedStore>> Open(const EmbeddedStoreOptions& options);
  ~EmbeddedStore() override;

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

  const std::string& database_path() const { return database_path_; }
  // True while a compaction pass is still dropping rows (for tests/metrics).
  bool compaction_in_progress();

 private:
  struct WriteRequest;
  struct LeaseState {
    int64_t ttl_seconds = 0;
    std::chrono::steady_clock::time_point deadline;
    bool revoking = false;
  };

  EmbeddedStore(const EmbeddedStoreOptions& options, std::string database_path);
  absl::Status Recover();
  void Enqueue(WriteRequest request);
  absl::StatusOr<int64_t> Submit(WriteRequest request);
  void WriterLoop();
  void MaintenanceLoop();

  const EmbeddedStoreOptions options_;
  const std::string database_path_;
  std::unique_ptr<MvccIndex> index_;
  std::unique_ptr<SqliteLog> log_;
  std::unique_ptr<WatchHub> hub_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<WriteRequest> queue_;
  bool stopping_ = false;
  absl::Status failed_;  // set once a commit failed; writes are refused after

  std::mutex lease_mu_;
  std::map<int64_t, LeaseState> leases_;
  int64_t next_lease_id_ = 1;

  // Compaction pass state (writer thread only, flag readable by others).
  std::string compaction_cursor_;
  bool compacting_ = false;
  std::mutex compaction_flag_mu_;

  std::thread writer_;
  std::mutex maintenance_mu_;
  std::condition_variable maintenance_cv_;
  bool maintenance_stop_ = false;
  std::thread maintenance_;
};

}  // namespace kelpie::store
