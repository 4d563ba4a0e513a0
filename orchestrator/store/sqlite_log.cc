#include "orchestrator/store/sqlite_log.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace kelpie::store {
namespace {

constexpr int kSchemaVersion = 1;
// WAL pages (4 KiB) after which the background checkpointer runs.
constexpr int kCheckpointWalPages = 1000;
// Under sustained writes a passive checkpoint may never catch up with the
// end of the WAL; past this size the writer checkpoints itself after its
// commit (the background pass already copied most frames, so this is
// short) and the WAL starts over: its size stays bounded.
constexpr int kForceCheckpointWalPages = 8000;

// A statement reset on scope exit so it can be reused.
class StatementReset {
 public:
  explicit StatementReset(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~StatementReset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3_stmt* stmt_;
};

}  // namespace

absl::Status SqliteLog::Error(const std::string& what) const {
  int code = sqlite3_extended_errcode(db_);
  std::string message = absl::StrCat("store database ", path_, ": ", what, ": ",
                                     sqlite3_errmsg(db_), " (sqlite error ", code, ")");
  int primary = code & 0xff;
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
    return absl::DataLossError(absl::StrCat(
        message, "; the file is damaged: restore it from a backup or move it away to start empty"));
  }
  return absl::UnavailableError(message);
}

absl::Status SqliteLog::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string what = absl::StrCat("\"", sql, "\" failed");
    sqlite3_free(err);
    return Error(what);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SqliteLog>> SqliteLog::Open(const std::string& path) {
  struct stat st;
  bool existed = ::stat(path.c_str(), &st) == 0;
  if (existed && st.st_size == 0) {
    // SQLite would treat an empty file as a new database; a store file is
    // never empty once created, so this is a truncation.
    return absl::DataLossError(absl::StrCat(
        "store database ", path, " is empty (truncated?); restore it from a backup or "
        "move it away to start empty"));
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  std::unique_ptr<SqliteLog> log(new SqliteLog(db, path));
  if (rc != SQLITE_OK) return log->Error("cannot open");
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 5000);

  // auto_vacuum must be chosen before the first table exists.
  KELPIE_RETURN_IF_ERROR(log->Exec("PRAGMA auto_vacuum=INCREMENTAL"));
  KELPIE_RETURN_IF_ERROR(log->Exec("PRAGMA journal_mode=WAL"));
  // FULL: in WAL mode every COMMIT fsyncs the WAL, so an acknowledged write
  // survives power loss, not only a process crash (NORMAL defers the fsync
  // to checkpoints).
  KELPIE_RETURN_IF_ERROR(log->Exec("PRAGMA synchronous=FULL"));
  // The WAL is reused after each checkpoint and truncated back to this size,
  // so it never grows without bound.
  KELPIE_RETURN_IF_ERROR(log->Exec("PRAGMA journal_size_limit=67108864"));
  KELPIE_RETURN_IF_ERROR(log->Exec("PRAGMA cache_size=-65536"));

  if (existed) {
    sqlite3_stmt* check = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &check, nullptr) != SQLITE_OK) {
      return log->Error("integrity check failed");
    }
    std::string problems;
    while ((rc = sqlite3_step(check)) == SQLITE_ROW) {
      std::string line = reinterpret_cast<const char*>(sqlite3_column_text(check, 0));
      if (line != "ok") absl::StrAppend(&problems, problems.empty() ? "" : "; ", line);
    }
    sqlite3_finalize(check);
    if (rc != SQLITE_DONE) return log->Error("integrity check failed");
    if (!problems.empty()) {
      return absl::DataLossError(absl::StrCat(
          "store database ", path, " is damaged: ", problems.substr(0, 500),
          "; restore it from a backup or move it away to start empty"));
    }
  }

  KELPIE_RETURN_IF_ERROR(log->Exec(
      // A rowid table, not WITHOUT ROWID: its leaves hold values up to
      // nearly a page inline, where an index b-tree would spill anything
      // over about 1 KiB into overflow pages (several times the bytes
      // written and fsynced per commit). Rows arrive in revision order, so
      // both the table and its index grow at their right edge.
      "CREATE TABLE IF NOT EXISTS log ("
      " revision INTEGER NOT NULL, key BLOB NOT NULL, value BLOB,"
      " create_revision INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL);"
      "CREATE UNIQUE INDEX IF NOT EXISTS log_revision_key ON log (revision, key);"
      "CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl_seconds INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"));
  sqlite3_stmt* version = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &version, nullptr);
  int schema = 0;
  if (sqlite3_step(version) == SQLITE_ROW) schema = sqlite3_column_int(version, 0);
  sqlite3_finalize(version);
  if (schema == 0) {
    KELPIE_RETURN_IF_ERROR(
        log->Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion).c_str()));
  } else if (schema != kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("store database ", path, " has schema version ", schema,
                     ", this kelpie understands version ", kSchemaVersion));
  }
  KELPIE_RETURN_IF_ERROR(log->Prepare());
  KELPIE_RETURN_IF_ERROR(log->StartCheckpointer());
  return log;
}

absl::Status SqliteLog::StartCheckpointer() {
  if (sqlite3_open_v2(path_.c_str(), &checkpoint_db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return absl::UnavailableError(absl::StrCat("store database ", path_,
                                               ": cannot open the checkpoint connection: ",
                                               sqlite3_errmsg(checkpoint_db_)));
  }
  sqlite3_busy_timeout(checkpoint_db_, 5000);
  // The checkpoint fsyncs the WAL before copying and the database after.
  sqlite3_exec(checkpoint_db_, "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
  // Replaces SQLite's in-commit automatic checkpoint on the writer connection.
  sqlite3_wal_hook(db_, &SqliteLog::OnWalCommit, this);
  checkpointer_ = std::thread([this] { CheckpointLoop(); });
  return absl::OkStatus();
}

int SqliteLog::OnWalCommit(void* self, sqlite3*, const char*, int wal_pages) {
  auto* log = static_cast<SqliteLog*>(self);
  if (wal_pages >= kForceCheckpointWalPages) log->force_checkpoint_ = true;
  if (wal_pages >= kCheckpointWalPages) {
    std::lock_guard lock(log->checkpoint_mu_);
    if (!log->checkpoint_wanted_) {
      log->checkpoint_wanted_ = true;
      log->checkpoint_cv_.notify_one();
    }
  }
  return SQLITE_OK;
}

void SqliteLog::CheckpointLoop() {
  std::unique_lock lock(checkpoint_mu_);
  for (;;) {
    checkpoint_cv_.wait(lock, [&] { return checkpoint_wanted_ || checkpoint_stop_; });
    if (checkpoint_stop_) return;
    checkpoint_wanted_ = false;
    lock.unlock();
    // PASSIVE never blocks the writer; once it has copied every frame the
    // next commit starts the WAL over from its beginning, so the WAL file
    // stays near kCheckpointWalPages.
    {
      std::lock_guard exclusive(checkpoint_run_mu_);
      sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                nullptr);
    }
    lock.lock();
  }
}

absl::Status SqliteLog::Prepare() {
  struct {
    const char* sql;
    sqlite3_stmt** stmt;
  } statements[] = {
      {"INSERT OR REPLACE INTO log (revision, key, value, create_revision, version, lease) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
       &insert_write_},
      {"DELETE FROM log WHERE revision = ?1 AND key = ?2", &delete_write_},
      {"INSERT OR REPLACE INTO leases VALUES (?1, ?2)", &insert_lease_},
      {"DELETE FROM leases WHERE id = ?1", &delete_lease_},
      {"INSERT OR REPLACE INTO meta VALUES (?1, ?2)", &set_meta_},
  };
  for (auto& s : statements) {
    if (sqlite3_prepare_v3(db_, s.sql, -1, SQLITE_PREPARE_PERSISTENT, s.stmt, nullptr) !=
        SQLITE_OK) {
      return Error(absl::StrCat("cannot prepare \"", s.sql, "\""));
    }
  }
  return absl::OkStatus();
}

SqliteLog::~SqliteLog() {
  if (checkpointer_.joinable()) {
    {
      std::lock_guard lock(checkpoint_mu_);
      checkpoint_stop_ = true;
    }
    checkpoint_cv_.notify_all();
    checkpointer_.join();
  }
  if (checkpoint_db_) sqlite3_close(checkpoint_db_);
  for (sqlite3_stmt* stmt :
       {insert_write_, delete_write_, insert_lease_, delete_lease_, set_meta_}) {
    if (stmt) sqlite3_finalize(stmt);
  }
  if (db_) sqlite3_close(db_);
}

absl::Status SqliteLog::Load(const std::function<void(LoggedWrite)>& row,
                             std::vector<StoredLease>* leases, int64_t* compacted_revision,
                             int64_t* max_revision) {
  *compacted_revision = 0;
  *max_revision = 0;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT value FROM meta WHERE name = 'compacted_revision'", -1,
                         &stmt, nullptr) != SQLITE_OK) {
    return Error("cannot read the compaction point");
  }
  if (sqlite3_step(stmt) == SQLITE_ROW) *compacted_revision = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);

  if (sqlite3_prepare_v2(db_,
                         "SELECT revision, key, value, create_revision, version, lease FROM log "
                         "ORDER BY revision, key",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    return Error("cannot read the log");
  }
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    LoggedWrite write;
    write.rev.revision = sqlite3_column_int64(stmt, 0);
    write.key.assign(static_cast<const char*>(sqlite3_column_blob(stmt, 1)),
                     static_cast<size_t>(sqlite3_column_bytes(stmt, 1)));
    if (sqlite3_column_type(stmt, 2) != SQLITE_NULL) {
      const void* data = sqlite3_column_blob(stmt, 2);
      size_t size = static_cast<size_t>(sqlite3_column_bytes(stmt, 2));
      write.rev.value = std::make_shared<const std::string>(
          data ? std::string(static_cast<const char*>(data), size) : std::string());
    }
    write.rev.create_revision = sqlite3_column_int64(stmt, 3);
    write.rev.version = sqlite3_column_int64(stmt, 4);
    write.rev.lease = sqlite3_column_int64(stmt, 5);
    *max_revision = write.rev.revision;
    row(std::move(write));
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return Error("cannot read the log");

  if (sqlite3_prepare_v2(db_, "SELECT id, ttl_seconds FROM leases", -1, &stmt, nullptr) !=
      SQLITE_OK) {
    return Error("cannot read the leases");
  }
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    leases->push_back({sqlite3_column_int64(stmt, 0), sqlite3_column_int64(stmt, 1)});
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return Error("cannot read the leases");
  return absl::OkStatus();
}

absl::Status SqliteLog::WriteBatch(const LogBatch& batch) {
  KELPIE_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  auto fail = [this](const std::string& what) {
    absl::Status status = Error(what);
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return status;
  };
  for (const LoggedWrite& w : batch.writes) {
    StatementReset reset(insert_write_);
    sqlite3_bind_int64(insert_write_, 1, w.rev.revision);
    sqlite3_bind_blob(insert_write_, 2, w.key.data(), static_cast<int>(w.key.size()),
                      SQLITE_STATIC);
    if (w.rev.value) {
      sqlite3_bind_blob(insert_write_, 3, w.rev.value->data(),
                        static_cast<int>(w.rev.value->size()), SQLITE_STATIC);
    } else {
      sqlite3_bind_null(insert_write_, 3);
    }
    sqlite3_bind_int64(insert_write_, 4, w.rev.create_revision);
    sqlite3_bind_int64(insert_write_, 5, w.rev.version);
    sqlite3_bind_int64(insert_write_, 6, w.rev.lease);
    if (sqlite3_step(insert_write_) != SQLITE_DONE) return fail("cannot log a write");
  }
  for (const DroppedRevision& d : batch.dropped) {
    StatementReset reset(delete_write_);
    sqlite3_bind_int64(delete_write_, 1, d.first);
    sqlite3_bind_blob(delete_write_, 2, d.second.data(), static_cast<int>(d.second.size()),
                      SQLITE_STATIC);
    if (sqlite3_step(delete_write_) != SQLITE_DONE) return fail("cannot drop a compacted row");
  }
  for (const StoredLease& lease : batch.granted_leases) {
    StatementReset reset(insert_lease_);
    sqlite3_bind_int64(insert_lease_, 1, lease.id);
    sqlite3_bind_int64(insert_lease_, 2, lease.ttl_seconds);
    if (sqlite3_step(insert_lease_) != SQLITE_DONE) return fail("cannot store a lease");
  }
  for (int64_t id : batch.revoked_leases) {
    StatementReset reset(delete_lease_);
    sqlite3_bind_int64(delete_lease_, 1, id);
    if (sqlite3_step(delete_lease_) != SQLITE_DONE) return fail("cannot delete a lease");
  }
  if (batch.compacted_revision > 0) {
    StatementReset reset(set_meta_);
    sqlite3_bind_text(set_meta_, 1, "compacted_revision", -1, SQLITE_STATIC);
    sqlite3_bind_int64(set_meta_, 2, batch.compacted_revision);
    if (sqlite3_step(set_meta_) != SQLITE_DONE) return fail("cannot store the compaction point");
  }
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return fail("commit failed");
  }
  if (force_checkpoint_) {
    force_checkpoint_ = false;
    std::lock_guard exclusive(checkpoint_run_mu_);
    // RESTART, not TRUNCATE: the WAL file keeps its size and is overwritten
    // from the start, and fsyncs that do not grow a file are cheaper.
    if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_RESTART, nullptr, nullptr) !=
        SQLITE_OK) {
      // Not fatal: the commit is durable; the next commit tries again.
      force_checkpoint_ = true;
    }
  }
  return absl::OkStatus();
}

absl::Status SqliteLog::Checkpoint() {
  KELPIE_RETURN_IF_ERROR(Exec("PRAGMA incremental_vacuum"));
  std::lock_guard exclusive(checkpoint_run_mu_);
  return Exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

}  // namespace kelpie::store
