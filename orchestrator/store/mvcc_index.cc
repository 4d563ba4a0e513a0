#include "orchestrator/store/mvcc_index.h"

#include <algorithm>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace kelpie::store {
namespace {

const Value& EmptyValue() {
  static const Value* empty = new Value(std::make_shared<const std::string>());
  return *empty;
}

absl::Status CompactedError(int64_t requested, int64_t compacted) {
  return absl::OutOfRangeError(absl::StrCat(std::string(kCompactedMessage), " (requested ", requested,
                                            ", compacted through ", compacted, ")"));
}

absl::Status FutureError(int64_t requested, int64_t current) {
  return absl::InvalidArgumentError(absl::StrCat(
      "required revision is a future revision (requested ", requested, ", current ", current, ")"));
}

}  // namespace

const KeyRevision* MvccIndex::AtRevision(const History& history, int64_t revision) {
  auto it = std::upper_bound(history.begin(), history.end(), revision,
                             [](int64_t rev, const KeyRevision& r) { return rev < r.revision; });
  if (it == history.begin()) return nullptr;
  --it;
  return it->value ? &*it : nullptr;
}

KeyValue MvccIndex::ToKeyValue(const std::string& key, const KeyRevision& rev) {
  KeyValue kv;
  kv.key = key;
  kv.value = rev.value ? rev.value : EmptyValue();
  kv.create_revision = rev.create_revision;
  kv.mod_revision = rev.revision;
  kv.version = rev.version;
  kv.lease = rev.lease;
  return kv;
}

absl::StatusOr<RangeResult> MvccIndex::Range(std::string_view prefix,
                                             const RangeOptions& options) const {
  std::shared_lock lock(mu_);
  RangeResult result;
  int64_t at = options.revision > 0 ? options.revision : visible_;
  if (at > visible_) return FutureError(at, visible_);
  if (at < compacted_) return CompactedError(at, compacted_);
  result.revision = at;
  std::string end = PrefixEnd(prefix);
  std::string_view start = prefix;
  if (!options.start_key.empty() && options.start_key > prefix) start = options.start_key;
  auto it = keys_.lower_bound(start);
  for (; it != keys_.end() && (end.empty() || it->first < end); ++it) {
    const KeyRevision* rev = AtRevision(it->second, at);
    if (rev == nullptr) continue;
    if (options.limit > 0 && static_cast<int64_t>(result.kvs.size()) >= options.limit) {
      if (!result.more) {
        result.more = true;
        result.next_key = it->first;
      }
      ++result.count;
      continue;
    }
    ++result.count;
    if (!options.count_only) result.kvs.push_back(ToKeyValue(it->first, *rev));
  }
  return result;
}

absl::StatusOr<std::vector<Event>> MvccIndex::EventsBetween(std::string_view prefix, int64_t from,
                                                            int64_t to) const {
  std::shared_lock lock(mu_);
  if (from <= compacted_) return CompactedError(from, compacted_);
  std::vector<Event> events;
  std::string end = PrefixEnd(prefix);
  for (auto it = keys_.lower_bound(prefix); it != keys_.end() && (end.empty() || it->first < end);
       ++it) {
    const History& history = it->second;
    for (size_t i = 0; i < history.size(); ++i) {
      const KeyRevision& rev = history[i];
      if (rev.revision < from || rev.revision > to) continue;
      Event event;
      const KeyRevision* prev = i > 0 && history[i - 1].value ? &history[i - 1] : nullptr;
      if (rev.value) {
        event.type = Event::Type::kPut;
        event.kv = ToKeyValue(it->first, rev);
      } else {
        event.type = Event::Type::kDelete;
        event.kv.key = it->first;
        event.kv.value = EmptyValue();
        event.kv.mod_revision = rev.revision;
      }
      if (prev) event.prev_kv = ToKeyValue(it->first, *prev);
      events.push_back(std::move(event));
    }
  }
  std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    return a.kv.mod_revision < b.kv.mod_revision;
  });
  return events;
}

int64_t MvccIndex::visible_revision() const {
  std::shared_lock lock(mu_);
  return visible_;
}

int64_t MvccIndex::compacted_revision() const {
  std::shared_lock lock(mu_);
  return compacted_;
}

const KeyRevision* MvccIndex::HeadOf(const std::string& key) const {
  auto it = keys_.find(key);
  if (it == keys_.end() || it->second.empty()) return nullptr;
  const KeyRevision& last = it->second.back();
  return last.value ? &last : nullptr;
}

bool MvccIndex::Holds(const Compare& compare) const {
  const KeyRevision* head = HeadOf(compare.key);
  int64_t actual = 0;
  if (head) {
    switch (compare.target) {
      case Compare::Target::kModRevision: actual = head->revision; break;
      case Compare::Target::kCreateRevision: actual = head->create_revision; break;
      case Compare::Target::kVersion: actual = head->version; break;
    }
  }
  switch (compare.result) {
    case Compare::Result::kEqual: return actual == compare.value;
    case Compare::Result::kNotEqual: return actual != compare.value;
    case Compare::Result::kLess: return actual < compare.value;
    case Compare::Result::kGreater: return actual > compare.value;
  }
  return false;
}

void MvccIndex::Attach(int64_t lease, const std::string& key) {
  if (lease != 0) lease_keys_[lease].insert(key);
}

void MvccIndex::Detach(int64_t lease, const std::string& key) {
  if (lease == 0) return;
  auto it = lease_keys_.find(lease);
  if (it == lease_keys_.end()) return;
  it->second.erase(key);
  if (it->second.empty()) lease_keys_.erase(it);
}

TxnResult MvccIndex::ApplyTxn(TxnRequest& request, std::vector<LoggedWrite>* log,
                              std::vector<Event>* events) {
  TxnResult result;
  result.succeeded = std::all_of(request.compares.begin(), request.compares.end(),
                                 [this](const Compare& c) { return Holds(c); });
  std::vector<Op>& ops = result.succeeded ? request.success : request.failure;
  bool writes = std::any_of(ops.begin(), ops.end(), [this](const Op& op) {
    return op.type == Op::Type::kPut || (op.type == Op::Type::kDelete && HeadOf(op.key));
  });
  const int64_t revision = writes ? head_ + 1 : head_;
  result.revision = revision;
  std::unique_lock lock(mu_, std::defer_lock);
  if (writes) lock.lock();  // readers skip head revisions, but the map itself changes
  for (Op& op : ops) {
    OpResult out;
    const KeyRevision* head = HeadOf(op.key);
    if (op.type == Op::Type::kGet) {
      if (head) out.kv = ToKeyValue(op.key, *head);
      result.results.push_back(std::move(out));
      continue;
    }
    if (head) out.prev_kv = ToKeyValue(op.key, *head);
    if (op.type == Op::Type::kPut) {
      KeyRevision rev;
      rev.revision = revision;
      rev.create_revision = head ? head->create_revision : revision;
      rev.version = head ? head->version + 1 : 1;
      rev.lease = op.lease;
      rev.value = std::make_shared<const std::string>(std::move(op.value));
      if (head) Detach(head->lease, op.key);
      Attach(op.lease, op.key);
      out.kv = ToKeyValue(op.key, rev);
      events->push_back(Event{Event::Type::kPut, *out.kv, out.prev_kv});
      log->push_back(LoggedWrite{op.key, rev});
      keys_[op.key].push_back(std::move(rev));
    } else if (head) {  // delete of a present key
      KeyRevision tombstone;
      tombstone.revision = revision;
      Detach(head->lease, op.key);
      Event event{Event::Type::kDelete, KeyValue{op.key, EmptyValue(), 0, revision, 0, 0},
                  out.prev_kv};
      events->push_back(std::move(event));
      log->push_back(LoggedWrite{op.key, tombstone});
      keys_[op.key].push_back(std::move(tombstone));
    }
    result.results.push_back(std::move(out));
  }
  head_ = revision;
  return result;
}

std::vector<std::string> MvccIndex::KeysWithLease(int64_t lease) const {
  auto it = lease_keys_.find(lease);
  if (it == lease_keys_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

void MvccIndex::Publish(int64_t revision) {
  std::unique_lock lock(mu_);
  visible_ = revision;
}

void MvccIndex::Restore(LoggedWrite row) {
  History& history = keys_[row.key];
  if (!history.empty()) {
    const KeyRevision& last = history.back();
    if (last.value) Detach(last.lease, row.key);
  }
  if (row.rev.value) Attach(row.rev.lease, row.key);
  head_ = std::max(head_, row.rev.revision);
  history.push_back(std::move(row.rev));
}

void MvccIndex::FinishRestore(int64_t revision, int64_t compacted) {
  std::unique_lock lock(mu_);
  head_ = std::max(head_, revision);
  visible_ = head_;
  compacted_ = compacted;
}

void MvccIndex::SetCompacted(int64_t revision) {
  std::unique_lock lock(mu_);
  compacted_ = std::max(compacted_, revision);
}

std::vector<DroppedRevision> MvccIndex::CompactChunk(std::string* cursor, size_t max_keys,
                                                     size_t max_dropped, bool* done) {
  std::vector<DroppedRevision> dropped;
  std::unique_lock lock(mu_);
  const int64_t at = compacted_;
  auto it = keys_.lower_bound(*cursor);
  for (size_t visited = 0;
       it != keys_.end() && visited < max_keys && dropped.size() < max_dropped; ++visited) {
    History& history = it->second;
    // Keep everything above `at` and the newest version at or below it when
    // it is live: that is what reads at `at` and later still need.
    size_t newest_at_or_below = 0;
    bool any = false;
    for (size_t i = 0; i < history.size() && history[i].revision <= at; ++i) {
      newest_at_or_below = i;
      any = true;
    }
    if (any) {
      size_t keep_from =
          history[newest_at_or_below].value ? newest_at_or_below : newest_at_or_below + 1;
      for (size_t i = 0; i < keep_from; ++i) dropped.emplace_back(history[i].revision, it->first);
      history.erase(history.begin(), history.begin() + static_cast<ptrdiff_t>(keep_from));
    }
    if (history.empty()) {
      it = keys_.erase(it);
    } else {
      ++it;
    }
  }
  *done = it == keys_.end();
  *cursor = *done ? std::string() : it->first;
  return dropped;
}

size_t MvccIndex::key_count() const {
  std::shared_lock lock(mu_);
  return keys_.size();
}

}  // namespace kelpie::store
