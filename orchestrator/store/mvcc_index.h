// The embedded store's in-memory multi-version index: every key with the
// revisions still retained, values shared (stored once). One writer thread
// applies transactions at the "head"; readers only see revisions up to the
// "visible" one, which the writer advances after the durable commit, so an
// unacknowledged write is never observable.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "orchestrator/store/store.h"

namespace kelpie::store {

// One retained version of a key. A null value marks a deletion (tombstone).
struct KeyRevision {
  int64_t revision = 0;
  int64_t create_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
  Value value;
};

// A row of the durable log: the write of `key` at `rev.revision`.
struct LoggedWrite {
  std::string key;
  KeyRevision rev;
};

// (revision, key) of a version dropped by compaction.
using DroppedRevision = std::pair<int64_t, std::string>;

class MvccIndex {
 public:
  // --- readers (any thread) ---
  absl::StatusOr<RangeResult> Range(std::string_view prefix, const RangeOptions& options) const;
  // Events of keys under `prefix` with revisions in [from, to], in revision
  // order; kOutOfRange when `from` is at or below the compacted revision.
  absl::StatusOr<std::vector<Event>> EventsBetween(std::string_view prefix, int64_t from,
                                                   int64_t to) const;
  int64_t visible_revision() const;
  int64_t compacted_revision() const;

  // --- the single writer ---
  int64_t head_revision() const { return head_; }
  // Evaluates `request` against the head and, if it writes, applies it as
  // revision head+1 (taking the values out of `request`, which is not
  // used again). Appends the rows to log and the events to `events`.
  TxnResult ApplyTxn(TxnRequest& request, std::vector<LoggedWrite>* log,
                     std::vector<Event>* events);
  // Keys currently attached to `lease` at the head.
  std::vector<std::string> KeysWithLease(int64_t lease) const;
  // Makes everything up to `revision` readable.
  void Publish(int64_t revision);
  // Rebuild from the durable log: rows must come in revision order.
  void Restore(LoggedWrite row);
  void FinishRestore(int64_t revision, int64_t compacted);

  // --- compaction ---
  // Marks history below `revision` as gone for readers.
  void SetCompacted(int64_t revision);
  // Drops superseded versions below the compacted revision, starting at
  // `*cursor`, for at most `max_keys` keys or until about `max_dropped`
  // versions were dropped, holding the write lock only for that chunk.
  // Returns the dropped (revision, key) pairs; sets `*done` when the whole
  // key space was visited.
  std::vector<DroppedRevision> CompactChunk(std::string* cursor, size_t max_keys,
                                            size_t max_dropped, bool* done);

  size_t key_count() const;

 private:
  using History = std::vector<KeyRevision>;
  static const KeyRevision* AtRevision(const History& history, int64_t revision);
  static KeyValue ToKeyValue(const std::string& key, const KeyRevision& rev);
  const KeyRevision* HeadOf(const std::string& key) const;
  bool Holds(const Compare& compare) const;
  void Attach(int64_t lease, const std::string& key);
  void Detach(int64_t lease, const std::string& key);

  mutable std::shared_mutex mu_;
  std::map<std::string, History, std::less<>> keys_;
  int64_t head_ = 0;       // writer only
  int64_t visible_ = 0;    // under mu_
  int64_t compacted_ = 0;  // under mu_
  std::map<int64_t, std::set<std::string>> lease_keys_;  // writer only
};

}  // namespace kelpie::store
