#include "orchestrator/store/store.h"

#include <future>
#include <set>

#include "absl/strings/str_cat.h"

namespace kelpie::store {
namespace {

template <typename T>
absl::StatusOr<T> Wait(const std::function<void(Callback<T>)>& start) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<T>>>();
  std::future<absl::StatusOr<T>> future = promise->get_future();
  start([promise](absl::StatusOr<T> result) { promise->set_value(std::move(result)); });
  return future.get();
}

std::string Printable(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    }
  }
  return out;
}

// Turns the result of a single-key conditional write into WriteResult or the
// documented error. `failure` holds the Get that ran when the compare failed.
absl::StatusOr<WriteResult> ToWriteResult(absl::StatusOr<TxnResult> txn, std::string_view key,
                                          int64_t expected_mod_revision, bool is_create) {
  if (!txn.ok()) return txn.status();
  WriteResult out;
  out.revision = txn->revision;
  if (txn->succeeded) {
    if (!txn->results.empty()) {
      out.kv = std::move(txn->results[0].kv);
      out.prev_kv = std::move(txn->results[0].prev_kv);
    }
    return out;
  }
  std::optional<KeyValue> current;
  if (!txn->results.empty()) current = std::move(txn->results[0].kv);
  if (is_create) {
    return absl::AlreadyExistsError(absl::StrCat("key \"", Printable(key),
                                                 "\" already exists (mod revision ",
                                                 current ? current->mod_revision : 0, ")"));
  }
  if (!current) return absl::NotFoundError(absl::StrCat("key \"", Printable(key), "\" not found"));
  return absl::FailedPreconditionError(
      absl::StrCat("key \"", Printable(key), "\" was modified: mod revision is ",
                   current->mod_revision, ", expected ", expected_mod_revision));
}

}  // namespace

bool IsCompacted(const absl::Status& status) {
  return status.code() == absl::StatusCode::kOutOfRange &&
         absl::string_view(status.message()).find(absl::string_view(
             kCompactedMessage.data(), kCompactedMessage.size())) != absl::string_view::npos;
}

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return end;  // every byte was 0xff: no upper bound
}

absl::Status ValidateTxn(const TxnRequest& request) {
  size_t bytes = 0;
  for (const Compare& c : request.compares) {
    if (c.key.empty()) return absl::InvalidArgumentError("compare on an empty key");
    bytes += c.key.size() + 16;
  }
  for (const std::vector<Op>* branch : {&request.success, &request.failure}) {
    std::set<std::string_view> written;
    for (const Op& op : *branch) {
      if (op.key.empty()) return absl::InvalidArgumentError("operation on an empty key");
      bytes += op.key.size() + op.value.size() + 16;
      if (op.type != Op::Type::kGet && !written.insert(op.key).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("key \"", Printable(op.key), "\" is written twice in one transaction"));
      }
    }
  }
  if (bytes > kMaxRequestBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request is too large: ", bytes, " bytes exceeds the limit of ",
                     kMaxRequestBytes, " bytes (1.5 MiB) for one write"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TxnResult> Store::Txn(TxnRequest request) {
  return Wait<TxnResult>(
      [&](Callback<TxnResult> done) { TxnAsync(std::move(request), std::move(done)); });
}

absl::StatusOr<KeyValue> Store::Get(std::string_view key, int64_t revision) {
  RangeOptions options;
  options.revision = revision;
  options.limit = 1;
  // A range over exactly one key: [key, key + "\0").
  options.start_key = std::string(key);
  auto range = Range(key, options);
  if (!range.ok()) return range.status();
  for (KeyValue& kv : range->kvs) {
    if (kv.key == key) return std::move(kv);
  }
  return absl::NotFoundError(absl::StrCat("key \"", Printable(key), "\" not found"));
}

void Store::CreateAsync(std::string key, std::string value, int64_t lease,
                        Callback<WriteResult> done) {
  TxnRequest txn;
  txn.compares.push_back({key, Compare::Target::kCreateRevision, Compare::Result::kEqual, 0});
  txn.success.push_back(Op::Put(key, std::move(value), lease));
  txn.failure.push_back(Op::Get(key));
  TxnAsync(std::move(txn), [key, done = std::move(done)](absl::StatusOr<TxnResult> r) {
    done(ToWriteResult(std::move(r), key, 0, /*is_create=*/true));
  });
}

void Store::UpdateAsync(std::string key, std::string value, int64_t expected_mod_revision,
                        int64_t lease, Callback<WriteResult> done) {
  if (expected_mod_revision <= 0) {
    done(absl::InvalidArgumentError("Update needs the key's current mod revision (> 0)"));
    return;
  }
  TxnRequest txn;
  txn.compares.push_back(
      {key, Compare::Target::kModRevision, Compare::Result::kEqual, expected_mod_revision});
  txn.success.push_back(Op::Put(key, std::move(value), lease));
  txn.failure.push_back(Op::Get(key));
  TxnAsync(std::move(txn),
           [key, expected_mod_revision, done = std::move(done)](absl::StatusOr<TxnResult> r) {
             done(ToWriteResult(std::move(r), key, expected_mod_revision, false));
           });
}

void Store::PutAsync(std::string key, std::string value, int64_t lease,
                     Callback<WriteResult> done) {
  TxnRequest txn;
  txn.success.push_back(Op::Put(key, std::move(value), lease));
  TxnAsync(std::move(txn), [key, done = std::move(done)](absl::StatusOr<TxnResult> r) {
    done(ToWriteResult(std::move(r), key, 0, false));
  });
}

void Store::DeleteAsync(std::string key, int64_t expected_mod_revision,
                        Callback<WriteResult> done) {
  TxnRequest txn;
  if (expected_mod_revision > 0) {
    txn.compares.push_back(
        {key, Compare::Target::kModRevision, Compare::Result::kEqual, expected_mod_revision});
  } else {
    txn.compares.push_back({key, Compare::Target::kCreateRevision, Compare::Result::kGreater, 0});
  }
  txn.success.push_back(Op::Delete(key));
  txn.failure.push_back(Op::Get(key));
  TxnAsync(std::move(txn),
           [key, expected_mod_revision, done = std::move(done)](absl::StatusOr<TxnResult> r) {
             done(ToWriteResult(std::move(r), key, expected_mod_revision, false));
           });
}

absl::StatusOr<WriteResult> Store::Create(std::string key, std::string value, int64_t lease) {
  return Wait<WriteResult>([&](Callback<WriteResult> done) {
    CreateAsync(std::move(key), std::move(value), lease, std::move(done));
  });
}

absl::StatusOr<WriteResult> Store::Update(std::string key, std::string value,
                                          int64_t expected_mod_revision, int64_t lease) {
  return Wait<WriteResult>([&](Callback<WriteResult> done) {
    UpdateAsync(std::move(key), std::move(value), expected_mod_revision, lease, std::move(done));
  });
}

absl::StatusOr<WriteResult> Store::Put(std::string key, std::string value, int64_t lease) {
  return Wait<WriteResult>([&](Callback<WriteResult> done) {
    PutAsync(std::move(key), std::move(value), lease, std::move(done));
  });
}

absl::StatusOr<WriteResult> Store::Delete(std::string key, int64_t expected_mod_revision) {
  return Wait<WriteResult>([&](Callback<WriteResult> done) {
    DeleteAsync(std::move(key), expected_mod_revision, std::move(done));
  });
}

}  // namespace kelpie::store
