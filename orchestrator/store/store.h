// The Store: Kelpie's revisioned key-value store with etcd v3 semantics. The
// API server's resourceVersion is a store revision, so every backend
// (embedded, etcd) must behave identically as seen through this interface.
//
// Revisions are global, start at 1 with the first write and increase by one
// per committed write request (a transaction counts once, however many keys
// it touches). Each key carries the revision that created it, the revision
// of its last modification and a version (writes since creation).
//
// Error codes every backend uses, so callers can map them to HTTP:
//   kOutOfRange         "required revision has been compacted"   -> 410 Gone
//   kFailedPrecondition compare-and-swap lost (mod revision moved) -> 409 Conflict
//   kAlreadyExists      Create of a key that exists                -> 409 Conflict
//   kNotFound           key (or lease) absent                      -> 404
//   kInvalidArgument    malformed request, request over 1.5 MiB, a
//                       revision newer than the store's            -> 400 / 413
//   kResourceExhausted  a watch whose consumer fell behind was ended -> re-list
//   kUnavailable        backend unreachable or shutting down       -> 503
// IsCompacted() recognises the first one.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kelpie::store {

// etcd's default request limit: a transaction's keys and values together.
inline constexpr size_t kMaxRequestBytes = 1536 * 1024;

// Message of the kOutOfRange status for compacted revisions (etcd's words).
inline constexpr std::string_view kCompactedMessage = "required revision has been compacted";

bool IsCompacted(const absl::Status& status);

// Values are immutable and shared: every copy of a KeyValue (range results,
// watch events, the in-memory index) points at the same bytes.
using Value = std::shared_ptr<const std::string>;

struct KeyValue {
  std::string key;
  Value value;  // never null in results; empty string for an empty value
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;

  std::string_view value_view() const {
    return value ? std::string_view(*value) : std::string_view();
  }
};

// The smallest key greater than every key that starts with `prefix`
// ("" when no such key exists, i.e. the range is unbounded).
std::string PrefixEnd(std::string_view prefix);

// --- reads ---------------------------------------------------------------

struct RangeOptions {
  // Read at this revision; 0 reads the newest. Pin later pages to
  // RangeResult::revision to get one consistent snapshot.
  int64_t revision = 0;
  // At most this many keys; 0 means no limit.
  int64_t limit = 0;
  // Start at this key (inclusive) instead of the prefix itself; pass
  // RangeResult::next_key to continue a paginated listing.
  std::string start_key;
  bool count_only = false;
};

struct RangeResult {
  std::vector<KeyValue> kvs;  // in key order
  bool more = false;          // keys remain past the limit
  std::string next_key;       // where the next page starts when `more`
  int64_t count = 0;          // keys in [start, end) at `revision`, ignoring limit
  int64_t revision = 0;       // the revision the read was served at
};

// --- writes --------------------------------------------------------------

struct Compare {
  enum class Target { kModRevision, kCreateRevision, kVersion };
  enum class Result { kEqual, kNotEqual, kLess, kGreater };
  std::string key;
  Target target = Target::kModRevision;
  Result result = Result::kEqual;
  // An absent key compares as 0 for every target: create_revision == 0
  // means "does not exist".
  int64_t value = 0;
};

struct Op {
  enum class Type { kPut, kDelete, kGet };
  Type type = Type::kGet;
  std::string key;
  std::string value;  // kPut only
  int64_t lease = 0;  // kPut only; 0 = no lease

  static Op Put(std::string key, std::string value, int64_t lease = 0) {
    return Op{Type::kPut, std::move(key), std::move(value), lease};
  }
  static Op Delete(std::string key) { return Op{Type::kDelete, std::move(key), {}, 0}; }
  static Op Get(std::string key) { return Op{Type::kGet, std::move(key), {}, 0}; }
};

struct TxnRequest {
  std::vector<Compare> compares;  // all must hold for `success` to run
  std::vector<Op> success;
  std::vector<Op> failure;
};

struct OpResult {
  // kPut: the key as written. kGet: the key if present. kDelete: unset.
  std::optional<KeyValue> kv;
  // kPut/kDelete: the key before the write, if it existed.
  std::optional<KeyValue> prev_kv;
};

struct TxnResult {
  bool succeeded = false;
  // The revision of this write, or the revision read at when nothing changed.
  int64_t revision = 0;
  std::vector<OpResult> results;  // one per op of the branch that ran
};

// Result of the single-key conveniences (Create/Update/Put/Delete).
struct WriteResult {
  int64_t revision = 0;
  std::optional<KeyValue> kv;       // the key after the write (unset after a delete)
  std::optional<KeyValue> prev_kv;  // the key before the write
};

template <typename T>
using Callback = std::function<void(absl::StatusOr<T>)>;

// --- watch ---------------------------------------------------------------

struct Event {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  // For kDelete: the key with mod_revision = the deletion's revision,
  // version 0 and an empty value.
  KeyValue kv;
  std::optional<KeyValue> prev_kv;  // when WatchOptions::prev_kv and still retained
};

struct WatchOptions {
  std::string prefix;
  // First revision to deliver (inclusive); 0 = changes after "now".
  int64_t start_revision = 0;
  bool prev_kv = true;
  // Send empty batches (bookmarks) carrying the current revision when no
  // event has been delivered for about `progress_interval`.
  bool progress_notify = false;
  std::chrono::milliseconds progress_interval{std::chrono::seconds(5)};
};

struct WatchBatch {
  std::vector<Event> events;  // revision order; empty for a progress notification
  // Every later event has a revision greater than this.
  int64_t revision = 0;
  bool IsProgressNotify() const { return events.empty(); }
};

// Receives a watch's output. Both functions are called from a store-owned
// thread, never concurrently for one watch, and must return quickly (hand the
// batch to the consumer's own queue): a watch whose consumer falls behind by
// more than the backend's buffer is ended with kResourceExhausted.
struct WatchConsumer {
  std::function<void(WatchBatch)> on_events;
  // Called once when the watch ends for any reason other than Cancel():
  // compacted start revision (kOutOfRange), overflow (kResourceExhausted),
  // backend failure or shutdown.
  std::function<void(absl::Status)> on_close;
};

// Owning handle of a running watch; destroying it cancels the watch. After
// Cancel() returns no callback of this watch is running or will run.
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
  virtual void Cancel() = 0;
  // Asks the backend to send a progress notification (an empty batch with
  // its current revision) soon, as etcd's progress request does; returns
  // false when the backend cannot do that on demand.
  virtual bool RequestProgress() { return false; }
};

// --- leases --------------------------------------------------------------

struct LeaseInfo {
  int64_t id = 0;
  int64_t ttl_seconds = 0;
};

// --- the interface -------------------------------------------------------

class Store {
 public:
  virtual ~Store() = default;

  // Reads are served from the backend's consistent state; `revision` 0 is
  // the newest committed revision.
  virtual absl::StatusOr<RangeResult> Range(std::string_view prefix,
                                            const RangeOptions& options) = 0;

  // The primitive every write goes through. `done` runs once, on a
  // backend-owned thread, after the write is durable (or failed); it must
  // not block, and in particular must not call the blocking write
  // conveniences below (the embedded store runs it on its writer thread;
  // starting more asynchronous writes from it is fine). Thousands of writes
  // may be in flight without a thread each.
  virtual void TxnAsync(TxnRequest request, Callback<TxnResult> done) = 0;

  // Drops history below `revision`; later reads and watches below it fail
  // with kOutOfRange.
  virtual absl::Status Compact(int64_t revision) = 0;
  // The newest committed revision and the compacted one.
  virtual absl::StatusOr<int64_t> CurrentRevision() = 0;
  virtual int64_t CompactedRevision() = 0;

  virtual absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(const WatchOptions& options,
                                                             WatchConsumer consumer) = 0;

  virtual absl::StatusOr<LeaseInfo> GrantLease(std::chrono::seconds ttl) = 0;
  // Deletes the keys attached to the lease (one revision) and the lease.
  virtual absl::Status RevokeLease(int64_t id) = 0;
  // Restarts the lease's TTL; kNotFound when it has expired.
  virtual absl::StatusOr<LeaseInfo> KeepAliveLease(int64_t id) = 0;

  // --- conveniences built on the primitives above ---

  absl::StatusOr<TxnResult> Txn(TxnRequest request);

  // The key at `revision` (0 = newest); kNotFound if absent.
  absl::StatusOr<KeyValue> Get(std::string_view key, int64_t revision = 0);

  // Create-if-absent: kAlreadyExists when the key exists.
  void CreateAsync(std::string key, std::string value, int64_t lease,
                   Callback<WriteResult> done);
  absl::StatusOr<WriteResult> Create(std::string key, std::string value, int64_t lease = 0);

  // Compare-and-swap on the key's mod revision: kFailedPrecondition when it
  // moved, kNotFound when the key is gone.
  void UpdateAsync(std::string key, std::string value, int64_t expected_mod_revision,
                   int64_t lease, Callback<WriteResult> done);
  absl::StatusOr<WriteResult> Update(std::string key, std::string value,
                                     int64_t expected_mod_revision, int64_t lease = 0);

  // Unconditional write.
  void PutAsync(std::string key, std::string value, int64_t lease, Callback<WriteResult> done);
  absl::StatusOr<WriteResult> Put(std::string key, std::string value, int64_t lease = 0);

  // Deletes the key; with expected_mod_revision != 0 only if it still has
  // that mod revision (kFailedPrecondition otherwise). kNotFound if absent.
  void DeleteAsync(std::string key, int64_t expected_mod_revision, Callback<WriteResult> done);
  absl::StatusOr<WriteResult> Delete(std::string key, int64_t expected_mod_revision = 0);
};

// Checks a request against kMaxRequestBytes and basic shape (non-empty keys,
// at most one write per key), with messages users can act on.
absl::Status ValidateTxn(const TxnRequest& request);

}  // namespace kelpie::store
