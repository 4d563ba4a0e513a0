// The embedded store's durable log: one SQLite database in WAL mode holding
// every retained key revision, the leases and the compaction point. Only the
// store's writer thread uses it; each WriteBatch is one SQLite transaction
// (group commit) that is on stable storage when WriteBatch returns.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "orchestrator/store/mvcc_index.h"

struct sqlite3;
struct sqlite3_stmt;

namespace kelpie::store {

struct StoredLease {
  int64_t id = 0;
  int64_t ttl_seconds = 0;
};

// Everything one group commit writes.
struct LogBatch {
  std::vector<LoggedWrite> writes;
  std::vector<DroppedRevision> dropped;  // compacted away
  std::vector<StoredLease> granted_leases;
  std::vector<int64_t> revoked_leases;
  int64_t compacted_revision = 0;  // > 0: new compaction point
};

class SqliteLog {
 public:
  // Opens (creating if needed) the database at `path` and verifies it
  // (PRAGMA quick_check): a damaged or truncated file is an error naming it.
  static absl::StatusOr<std::unique_ptr<SqliteLog>> Open(const std::string& path);
  ~SqliteLog();
  SqliteLog(const SqliteLog&) = delete;
  SqliteLog& operator=(const SqliteLog&) = delete;

  // Streams every stored revision in revision order.
  absl::Status Load(const std::function<void(LoggedWrite)>& row,
                    std::vector<StoredLease>* leases, int64_t* compacted_revision,
                    int64_t* max_revision);

  // Commits the batch durably (synchronous=FULL: the WAL is fsynced before
  // COMMIT returns).
  absl::Status WriteBatch(const LogBatch& batch);

  // Returns freed pages to the file system, moves the WAL into the database
  // file and truncates the WAL; called after each compaction pass.
  absl::Status Checkpoint();

  const std::string& path() const { return path_; }

 private:
  SqliteLog(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  absl::Status Exec(const char* sql);
  absl::Status StartCheckpointer();
  void CheckpointLoop();
  static int OnWalCommit(void* self, sqlite3* db, const char* name, int wal_pages);
  absl::Status Error(const std::string& what) const;
  absl::Status Prepare();

  sqlite3* db_ = nullptr;
  std::string path_;
  sqlite3_stmt* insert_write_ = nullptr;
  sqlite3_stmt* delete_write_ = nullptr;
  sqlite3_stmt* insert_lease_ = nullptr;
  sqlite3_stmt* delete_lease_ = nullptr;
  sqlite3_stmt* set_meta_ = nullptr;

  // Checkpoints copy the WAL into the database file on a second connection
  // and thread, so the writer never waits for them (SQLite's automatic
  // checkpoint would run inside a commit). Triggered by WAL size.
  sqlite3* checkpoint_db_ = nullptr;
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_wanted_ = false;
  bool checkpoint_stop_ = false;
  // Held while any checkpoint runs: SQLite refuses a second concurrent one.
  std::mutex checkpoint_run_mu_;
  bool force_checkpoint_ = false;  // writer thread only
  std::thread checkpointer_;
};

}  // namespace kelpie::store
