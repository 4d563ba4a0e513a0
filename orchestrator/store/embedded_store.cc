#include "orchestrator/store/embedded_store.h"

#include <future>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "orchestrator/store/mvcc_index.h"
#include "orchestrator/store/sqlite_log.h"
#include "orchestrator/store/watch_hub.h"

namespace kelpie::store {

struct EmbeddedStore::WriteRequest {
  enum class Kind { kTxn, kGrantLease, kRevokeLease, kCompact };
  Kind kind = Kind::kTxn;
  TxnRequest txn;
  int64_t argument = 0;  // lease ttl (grant), lease id (revoke), revision (compact)
  size_t bytes = 0;      // keys and values carried
  Callback<TxnResult> txn_done;
  Callback<int64_t> done;  // non-txn kinds: lease id / revision
};

namespace {

// Bounds one group commit so a burst cannot build a transaction of unbounded size.
constexpr size_t kMaxRequestsPerCommit = 8192;
// Bounds the bytes of one group commit (a burst of large objects).
constexpr size_t kMaxBytesPerCommit = 64 << 20;
// Bounds the compaction deletes riding along with one group commit.
constexpr size_t kMaxDroppedRowsPerCommit = 20000;

}  // namespace

EmbeddedStore::EmbeddedStore(const EmbeddedStoreOptions& options, std::string database_path)
    : options_(options), database_path_(std::move(database_path)) {}

absl::StatusOr<std::unique_ptr<EmbeddedStore>> EmbeddedStore::Open(
    const EmbeddedStoreOptions& options) {
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("the embedded store needs a data directory");
  }
  KELPIE_RETURN_IF_ERROR(MakeDirectories(options.data_dir, 0700));
  std::unique_ptr<EmbeddedStore> store(
      new EmbeddedStore(options, options.data_dir + "/store.db"));
  KELPIE_RETURN_IF_ERROR(store->Recover());
  store->writer_ = std::thread([s = store.get()] { s->WriterLoop(); });
  store->maintenance_ = std::thread([s = store.get()] { s->MaintenanceLoop(); });
  return store;
}

absl::Status EmbeddedStore::Recover() {
  KELPIE_ASSIGN_OR_RETURN(log_, SqliteLog::Open(database_path_));
  index_ = std::make_unique<MvccIndex>();
  std::vector<StoredLease> leases;
  int64_t compacted = 0;
  int64_t max_revision = 0;
  KELPIE_RETURN_IF_ERROR(log_->Load([this](LoggedWrite row) { index_->Restore(std::move(row)); },
                                    &leases, &compacted, &max_revision));
  // A compaction may have dropped the newest rows (deletions), so the
  // compaction point also bounds the revision from below.
  index_->FinishRestore(std::max(max_revision, compacted), compacted);
  auto now = std::chrono::steady_clock::now();
  for (const StoredLease& lease : leases) {
    // Like etcd after a leader change, restored leases get their full TTL
    // again: the time the server was down does not count against them.
    leases_[lease.id] = {lease.ttl_seconds, now + std::chrono::seconds(lease.ttl_seconds), false};
    next_lease_id_ = std::max(next_lease_id_, lease.id + 1);
  }
  // Finish a compaction pass a crash may have interrupted.
  compacting_ = compacted > 0;
  hub_ = std::make_unique<WatchHub>(
      WatchHub::Options{options_.watch_buffer_events, options_.watch_delivery_threads});
  spdlog::info("store: opened {} at revision {} ({} keys, compacted through {})",
               database_path_, index_->visible_revision(), index_->key_count(), compacted);
  return absl::OkStatus();
}

EmbeddedStore::~EmbeddedStore() {
  {
    std::lock_guard lock(maintenance_mu_);
    maintenance_stop_ = true;
  }
  maintenance_cv_.notify_all();
  if (maintenance_.joinable()) maintenance_.join();
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  hub_.reset();  // ends the remaining watches
}

absl::StatusOr<RangeResult> EmbeddedStore::Range(std::string_view prefix,
                                                 const RangeOptions& options) {
  return index_->Range(prefix, options);
}

void EmbeddedStore::Enqueue(WriteRequest request) {
  absl::Status refused;
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_) {
      refused = absl::UnavailableError("the store is shutting down");
    } else if (!failed_.ok()) {
      refused = failed_;
    } else {
      queue_.push_back(std::move(request));
    }
  }
  if (refused.ok()) {
    queue_cv_.notify_one();
  } else if (request.txn_done) {
    request.txn_done(refused);
  } else if (request.done) {
    request.done(refused);
  }
}

absl::StatusOr<int64_t> EmbeddedStore::Submit(WriteRequest request) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<int64_t>>>();
  auto future = promise->get_future();
  request.done = [promise](absl::StatusOr<int64_t> r) { promise->set_value(std::move(r)); };
  Enqueue(std::move(request));
  return future.get();
}

void EmbeddedStore::TxnAsync(TxnRequest request, Callback<TxnResult> done) {
  absl::Status valid = ValidateTxn(request);
  if (!valid.ok()) {
    done(valid);
    return;
  }
  WriteRequest w;
  w.kind = WriteRequest::Kind::kTxn;
  for (const std::vector<Op>* ops : {&request.success, &request.failure}) {
    for (const Op& op : *ops) w.bytes += op.key.size() + op.value.size();
  }
  w.txn = std::move(request);
  w.txn_done = std::move(done);
  Enqueue(std::move(w));
}

absl::Status EmbeddedStore::Compact(int64_t revision) {
  int64_t visible = index_->visible_revision();
  if (revision > visible) {
    return absl::InvalidArgumentError(
        absl::StrCat("required revision is a future revision (requested ", revision,
                     ", current ", visible, ")"));
  }
  WriteRequest w;
  w.kind = WriteRequest::Kind::kCompact;
  w.argument = revision;
  return Submit(std::move(w)).status();
}

absl::StatusOr<int64_t> EmbeddedStore::CurrentRevision() { return index_->visible_revision(); }

int64_t EmbeddedStore::CompactedRevision() { return index_->compacted_revision(); }

bool EmbeddedStore::compaction_in_progress() {
  std::lock_guard lock(compaction_flag_mu_);
  return compacting_;
}

absl::StatusOr<std::unique_ptr<WatchHandle>> EmbeddedStore::Watch(const WatchOptions& options,
                                                                  WatchConsumer consumer) {
  if (!consumer.on_events) return absl::InvalidArgumentError("a watch needs an on_events callback");
  auto lock = hub_->Lock();
  const int64_t visible = index_->visible_revision();
  std::vector<Event> catch_up;
  if (options.start_revision > visible + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("required revision is a future revision (watch from ",
                     options.start_revision, ", current ", visible, ")"));
  }
  if (options.start_revision > 0) {
    // Also checks the start against the compaction point.
    KELPIE_ASSIGN_OR_RETURN(
        catch_up, index_->EventsBetween(options.prefix, options.start_revision, visible));
  }
  return hub_->Add(options, std::move(consumer), std::move(catch_up), visible);
}

absl::StatusOr<LeaseInfo> EmbeddedStore::GrantLease(std::chrono::seconds ttl) {
  if (ttl.count() <= 0) return absl::InvalidArgumentError("a lease needs a positive TTL");
  WriteRequest w;
  w.kind = WriteRequest::Kind::kGrantLease;
  w.argument = ttl.count();
  KELPIE_ASSIGN_OR_RETURN(int64_t id, Submit(std::move(w)));
  return LeaseInfo{id, ttl.count()};
}

absl::Status EmbeddedStore::RevokeLease(int64_t id) {
  WriteRequest w;
  w.kind = WriteRequest::Kind::kRevokeLease;
  w.argument = id;
  return Submit(std::move(w)).status();
}

absl::StatusOr<LeaseInfo> EmbeddedStore::KeepAliveLease(int64_t id) {
  std::lock_guard lock(lease_mu_);
  auto it = leases_.find(id);
  if (it == leases_.end() || it->second.revoking) {
    return absl::NotFoundError(absl::StrCat("lease ", id, " not found (expired or revoked)"));
  }
  it->second.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(it->second.ttl_seconds);
  return LeaseInfo{id, it->second.ttl_seconds};
}

void EmbeddedStore::WriterLoop() {
  for (;;) {
    std::vector<WriteRequest> batch;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || compacting_; });
      if (stopping_ && queue_.empty()) return;
      size_t bytes = 0;
      while (!queue_.empty() && batch.size() < kMaxRequestsPerCommit &&
             (batch.empty() || bytes + queue_.front().bytes <= kMaxBytesPerCommit)) {
        bytes += queue_.front().bytes;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }

    LogBatch log;
    std::vector<Event> events;
    // Completions run after the commit, in request order.
    std::vector<std::function<void(const absl::Status&)>> completions;
    completions.reserve(batch.size());
    for (WriteRequest& request : batch) {
      switch (request.kind) {
        case WriteRequest::Kind::kTxn: {
          absl::Status lease_ok;
          {
            std::lock_guard lock(lease_mu_);
            for (const std::vector<Op>* ops : {&request.txn.success, &request.txn.failure}) {
              for (const Op& op : *ops) {
                if (op.type == Op::Type::kPut && op.lease != 0 && !leases_.contains(op.lease)) {
                  lease_ok = absl::NotFoundError(
                      absl::StrCat("lease ", op.lease, " not found (expired or revoked)"));
                }
              }
            }
          }
          if (!lease_ok.ok()) {
            completions.push_back([lease_ok, done = std::move(request.txn_done)](
                                      const absl::Status&) { done(lease_ok); });
            break;
          }
          TxnResult result = index_->ApplyTxn(request.txn, &log.writes, &events);
          completions.push_back([result = std::move(result), done = std::move(request.txn_done)](
                                    const absl::Status& commit) mutable {
            if (commit.ok()) {
              done(std::move(result));
            } else {
              done(commit);
            }
          });
          break;
        }
        case WriteRequest::Kind::kGrantLease: {
          int64_t id;
          {
            std::lock_guard lock(lease_mu_);
            id = next_lease_id_++;
            leases_[id] = {request.argument,
                           std::chrono::steady_clock::now() + std::chrono::seconds(request.argument),
                           false};
          }
          log.granted_leases.push_back({id, request.argument});
          completions.push_back([id, done = std::move(request.done)](const absl::Status& commit) {
            if (commit.ok()) {
              done(id);
            } else {
              done(commit);
            }
          });
          break;
        }
        case WriteRequest::Kind::kRevokeLease: {
          const int64_t id = request.argument;
          bool known;
          {
            std::lock_guard lock(lease_mu_);
            known = leases_.erase(id) > 0;
          }
          if (!known) {
            completions.push_back([id, done = std::move(request.done)](const absl::Status&) {
              done(absl::NotFoundError(absl::StrCat("lease ", id, " not found (expired or revoked)")));
            });
            break;
          }
          TxnRequest deletes;
          for (std::string& key : index_->KeysWithLease(id)) {
            deletes.success.push_back(Op::Delete(std::move(key)));
          }
          TxnResult result = index_->ApplyTxn(deletes, &log.writes, &events);
          log.revoked_leases.push_back(id);
          completions.push_back([revision = result.revision, done = std::move(request.done)](
                                    const absl::Status& commit) {
            if (commit.ok()) {
              done(revision);
            } else {
              done(commit);
            }
          });
          break;
        }
        case WriteRequest::Kind::kCompact: {
          const int64_t revision = request.argument;
          const int64_t compacted = index_->compacted_revision();
          if (revision <= compacted) {
            completions.push_back([revision, compacted, done = std::move(request.done)](
                                      const absl::Status&) {
              done(absl::OutOfRangeError(absl::StrCat(std::string(kCompactedMessage), " (requested ", revision,
                                                      ", compacted through ", compacted, ")")));
            });
            break;
          }
          // Readers below `revision` fail from now on; the rows go in steps.
          index_->SetCompacted(revision);
          log.compacted_revision = revision;
          {
            std::lock_guard lock(compaction_flag_mu_);
            compacting_ = true;
          }
          compaction_cursor_.clear();
          completions.push_back([revision, done = std::move(request.done)](
                                    const absl::Status& commit) {
            if (commit.ok()) {
              done(revision);
            } else {
              done(commit);
            }
          });
          break;
        }
      }
    }

    // One bounded step of the running compaction rides along with this
    // commit, so compaction never holds the writer for long.
    bool compaction_finished = false;
    if (compacting_) {
      bool done = false;
      log.dropped = index_->CompactChunk(&compaction_cursor_, options_.compaction_keys_per_step,
                                         kMaxDroppedRowsPerCommit, &done);
      compaction_finished = done;
    }

    absl::Status commit = log_->WriteBatch(log);
    if (!commit.ok()) {
      spdlog::error("store: {}; the store refuses writes from now on", commit.message());
      std::lock_guard lock(queue_mu_);
      failed_ = absl::UnavailableError(absl::StrCat(
          "the store cannot write its log and refuses writes: ", commit.message()));
      commit = failed_;
    } else {
      auto hub_lock = hub_->Lock();
      index_->Publish(index_->head_revision());
      if (!events.empty()) {
        hub_->Publish(std::make_shared<const std::vector<Event>>(std::move(events)),
                      index_->head_revision());
      }
    }
    for (auto& complete : completions) complete(commit);
    if (compaction_finished) {
      if (commit.ok()) {
        // The pass freed pages: fold the WAL into the database, truncate it
        // and give the free pages back, so the files track the live data.
        absl::Status checkpoint = log_->Checkpoint();
        if (!checkpoint.ok()) spdlog::warn("store: checkpoint: {}", checkpoint.message());
      }
      std::lock_guard lock(compaction_flag_mu_);
      compacting_ = false;
    }
  }
}

void EmbeddedStore::MaintenanceLoop() {
  using Clock = std::chrono::steady_clock;
  const auto interval = options_.compaction_interval;
  auto next_compaction = Clock::now() + interval;
  int64_t revision_one_interval_ago = index_->visible_revision();
  std::unique_lock lock(maintenance_mu_);
  while (!maintenance_cv_.wait_for(lock, std::chrono::milliseconds(100),
                                   [&] { return maintenance_stop_; })) {
    lock.unlock();
    // Expired leases are revoked like an explicit revoke (one revision).
    std::vector<int64_t> expired;
    {
      std::lock_guard lease_lock(lease_mu_);
      auto now = Clock::now();
      for (auto& [id, lease] : leases_) {
        if (!lease.revoking && lease.deadline <= now) {
          lease.revoking = true;
          expired.push_back(id);
        }
      }
    }
    for (int64_t id : expired) {
      WriteRequest w;
      w.kind = WriteRequest::Kind::kRevokeLease;
      w.argument = id;
      w.done = [id](absl::StatusOr<int64_t> r) {
        if (!r.ok() && r.status().code() != absl::StatusCode::kNotFound) {
          spdlog::warn("store: expiring lease {}: {}", id, r.status().message());
        }
      };
      Enqueue(std::move(w));
    }
    // Like kube-apiserver: compact to the revision seen one interval ago,
    // so clients always have at least one interval of history to resume from.
    if (interval.count() > 0 && Clock::now() >= next_compaction) {
      next_compaction = Clock::now() + interval;
      if (revision_one_interval_ago > index_->compacted_revision()) {
        WriteRequest w;
        w.kind = WriteRequest::Kind::kCompact;
        w.argument = revision_one_interval_ago;
        w.done = [](absl::StatusOr<int64_t> r) {
          if (r.ok()) {
            spdlog::debug("store: compacted through revision {}", *r);
          } else if (!IsCompacted(r.status())) {
            spdlog::warn("store: compaction: {}", r.status().message());
          }
        };
        Enqueue(std::move(w));
      }
      revision_one_interval_ago = index_->visible_revision();
    }
    lock.lock();
  }
}

}  // namespace kelpie::store
