#include "orchestrator/apiserver/instrumented_store.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>

#include "absl/strings/match.h"
#include "orchestrator/api/resource_registry.h"

namespace kelpie::apiserver {

namespace {

using Clock = std::chrono::steady_clock;

// kube-apiserver's buckets for etcd_request_duration_seconds.
const prometheus::Histogram::BucketBoundaries& Buckets() {
  static const prometheus::Histogram::BucketBoundaries b = {0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5,
                                                            2,     3,     4,    5,   10,  15,  20,  30,  45,  60};
  return b;
}

std::string OperationOf(const store::TxnRequest& txn) {
  if (txn.success.empty()) return "txn";
  const store::Op& op = txn.success.front();
  switch (op.type) {
    case store::Op::Type::kGet:
      return "get";
    case store::Op::Type::kDelete:
      return "delete";
    case store::Op::Type::kPut:
      for (const auto& c : txn.compares) {
        if (c.key == op.key && c.target == store::Compare::Target::kCreateRevision && c.value == 0 &&
            c.result == store::Compare::Result::kEqual) {
          return "create";
        }
      }
      return "update";
  }
  return "txn";
}

}  // namespace

std::string StorageTypeOfKey(std::string_view key) {
  if (key.substr(0, 10) != "/registry/") return "";
  std::string_view rest = key.substr(10);
  size_t slash = rest.find('/');
  std::string plural(rest.substr(0, slash));
  for (const auto& t : api::ResourceRegistry::Builtin().all()) {
    if (t.plural == plural) return t.group.empty() ? plural : plural + "." + t.group;
  }
  return plural;
}

struct InstrumentedStore::Metrics {
  prometheus::Family<prometheus::Histogram>* duration;
  prometheus::Family<prometheus::Counter>* total;
  prometheus::Family<prometheus::Counter>* errors;

  void Record(const std::string& operation, const std::string& type, Clock::time_point start, bool ok) {
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    prometheus::Labels labels = {{"operation", operation}, {"type", type}};
    duration->Add(labels, Buckets()).Observe(seconds);
    total->Add(labels).Increment();
    if (!ok) errors->Add(labels).Increment();
  }
};

InstrumentedStore::InstrumentedStore(std::shared_ptr<store::Store> backend, prometheus::Registry& registry)
    : backend_(std::move(backend)), metrics_(std::make_shared<Metrics>()) {
  metrics_->duration = &prometheus::BuildHistogram()
                            .Name("etcd_request_duration_seconds")
                            .Help("Etcd request latency in seconds for each operation and object type.")
                            .Register(registry);
  metrics_->total = &prometheus::BuildCounter()
                         .Name("etcd_requests_total")
                         .Help("Etcd request counts for each operation and object type.")
                         .Register(registry);
  metrics_->errors = &prometheus::BuildCounter()
                          .Name("etcd_request_errors_total")
                          .Help("Etcd failed request counts for each operation and object type.")
                          .Register(registry);
}

InstrumentedStore::~InstrumentedStore() = default;

absl::StatusOr<store::RangeResult> InstrumentedStore::Range(std::string_view prefix,
                                                            const store::RangeOptions& options) {
  auto start = Clock::now();
  auto r = backend_->Range(prefix, options);
  // A prefix ending in '/' is a folder (a list); anything else one key.
  bool list = !prefix.empty() && prefix.back() == '/';
  metrics_->Record(list ? "list" : "get", StorageTypeOfKey(prefix), start,
                   r.ok() || r.status().code() == absl::StatusCode::kNotFound);
  return r;
}

void InstrumentedStore::TxnAsync(store::TxnRequest request, store::Callback<store::TxnResult> done) {
  auto start = Clock::now();
  std::string operation = OperationOf(request);
  std::string type = request.success.empty() ? "" : StorageTypeOfKey(request.success.front().key);
  backend_->TxnAsync(std::move(request), [metrics = metrics_, operation = std::move(operation), type = std::move(type),
                                          start, done = std::move(done)](absl::StatusOr<store::TxnResult> r) {
    metrics->Record(operation, type, start, r.ok());
    done(std::move(r));
  });
}

absl::Status InstrumentedStore::Compact(int64_t revision) {
  auto start = Clock::now();
  absl::Status s = backend_->Compact(revision);
  metrics_->Record("compact", "", start, s.ok());
  return s;
}

absl::StatusOr<int64_t> InstrumentedStore::CurrentRevision() { return backend_->CurrentRevision(); }

int64_t InstrumentedStore::CompactedRevision() { return backend_->CompactedRevision(); }

absl::StatusOr<std::unique_ptr<store::WatchHandle>> InstrumentedStore::Watch(const store::WatchOptions& options,
                                                                             store::WatchConsumer consumer) {
  return backend_->Watch(options, std::move(consumer));
}

absl::StatusOr<store::LeaseInfo> InstrumentedStore::GrantLease(std::chrono::seconds ttl) {
  auto start = Clock::now();
  auto r = backend_->GrantLease(ttl);
  metrics_->Record("grantLease", "", start, r.ok());
  return r;
}

absl::Status InstrumentedStore::RevokeLease(int64_t id) {
  auto start = Clock::now();
  absl::Status s = backend_->RevokeLease(id);
  metrics_->Record("revokeLease", "", start, s.ok());
  return s;
}

absl::StatusOr<store::LeaseInfo> InstrumentedStore::KeepAliveLease(int64_t id) {
  auto start = Clock::now();
  auto r = backend_->KeepAliveLease(id);
  metrics_->Record("keepAliveLease", "", start, r.ok());
  return r;
}

}  // namespace kelpie::apiserver
