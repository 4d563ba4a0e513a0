// A Store decorator that times every call into the backend and publishes
// it as kube-apiserver does for etcd:
//   etcd_request_duration_seconds{operation,type}  (histogram)
//   etcd_requests_total{operation,type}
//   etcd_request_errors_total{operation,type}
// operation is get, list, create, update, delete, txn, compact,
// grantLease, revokeLease, keepAliveLease; type the resource the key
// belongs to ("pods", "deployments.apps"), taken from the key layout
// /registry/<resource>/...
#pragma once

#include <memory>
#include <string>

#include "orchestrator/store/store.h"

namespace prometheus {
class Registry;
}

namespace kelpie::apiserver {

class InstrumentedStore : public store::Store {
 public:
  InstrumentedStore(std::shared_ptr<store::Store> backend, prometheus::Registry& registry);
  ~InstrumentedStore() override;

  absl::StatusOr<store::RangeResult> Range(std::string_view prefix, const store::RangeOptions& options) override;
  void TxnAsync(store::TxnRequest request, store::Callback<store::TxnResult> done) override;
  absl::Status Compact(int64_t revision) override;
  absl::StatusOr<int64_t> CurrentRevision() override;
  int64_t CompactedRevision() override;
  absl::StatusOr<std::unique_ptr<store::WatchHandle>> Watch(const store::WatchOptions& options,
                                                            store::WatchConsumer consumer) override;
  absl::StatusOr<store::LeaseInfo> GrantLease(std::chrono::seconds ttl) override;
  absl::Status RevokeLease(int64_t id) override;
  absl::StatusOr<store::LeaseInfo> KeepAliveLease(int64_t id) override;

 private:
  struct Metrics;
  std::shared_ptr<store::Store> backend_;
  std::shared_ptr<Metrics> metrics_;
};

// The type label for a key: "pods" for /registry/pods/..., with the group
// appended for named groups ("deployments.apps").
std::string StorageTypeOfKey(std::string_view key);

}  // namespace kelpie::apiserver
