// The etcd v3 store backend: the Store interface over etcd's gRPC API, for
// clusters where several Kelpie servers share one etcd cluster.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "orchestrator/store/store.h"

namespace kelpie::store {

struct EtcdStoreOptions {
  // Client URLs (http://host:port, https://host:port or host:port). Requests
  // go to one endpoint and fail over to the next when it is unreachable.
  std::vector<std::string> endpoints;
  // TLS: CA bundle to verify the servers, and an optional client
  // certificate and key. TLS is used for https:// endpoints or when
  // ca_file is set.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
};

class EtcdStoreImpl;

class EtcdStore : public Store {
 public:
  // Connects and checks that some endpoint answers.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> Open(const EtcdStoreOptions& options);
  ~EtcdStore() override;

  absl::StatusOr<RangeResult> Range(std::string_view prefix, const RangeOptions& options) override;
  void TxnAsync(TxnRequest request, Callback<TxnResult> done) override;
  absl::Status Compact(int64_t revision) override;
  absl::StatusOr<int64_t> CurrentRevision() override;
  // etcd does not report its compaction point: this is the highest one this
  // client has seen (its own compactions and compacted-revision errors).
  int64_t CompactedRevision() override;
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(const WatchOptions& options,
                                                     WatchConsumer consumer) override;
  absl::StatusOr<LeaseInfo> GrantLease(std::chrono::seconds ttl) override;
  absl::Status RevokeLease(int64_t id) override;
  absl::StatusOr<LeaseInfo> KeepAliveLease(int64_t id) override;

 private:
  explicit EtcdStore(std::unique_ptr<EtcdStoreImpl> impl);
  std::unique_ptr<EtcdStoreImpl> impl_;
};

}  // namespace kelpie::store
