// One etcd Watch stream carrying one Kelpie watch, as a gRPC callback
// reactor: no thread per watch. Internal to the etcd backend.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "orchestrator/store/store.h"
#include "proto/etcd/etcdserverpb/rpc.grpc.pb.h"

namespace kelpie::store {

class EtcdWatch : public grpc::ClientBidiReactor<etcdserverpb::WatchRequest,
                                                 etcdserverpb::WatchResponse> {
 public:
  EtcdWatch(const WatchOptions& options, WatchConsumer consumer, std::string endpoint);

  // Starts the stream and waits for etcd to confirm the watch.
  absl::Status Start(etcdserverpb::Watch::Stub* stub, std::chrono::milliseconds timeout);
  // Ends the stream; no callback runs after it returns (unless called from
  // one of this watch's own callbacks).
  void Cancel();
  // Asks etcd for a progress notification when none was delivered recently.
  void MaybeRequestProgress(std::chrono::steady_clock::time_point now);
  // Asks etcd for a progress notification now (false once the watch ended).
  bool RequestProgressNow();
  bool finished();
  // The highest compaction revision etcd reported on this stream.
  int64_t compact_revision();

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  void Write(etcdserverpb::WatchRequest request);

  const WatchOptions options_;
  const WatchConsumer consumer_;
  const std::string endpoint_;
  grpc::ClientContext context_;
  etcdserverpb::WatchRequest request_;
  etcdserverpb::WatchResponse response_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool created_ = false;
  bool done_ = false;
  bool cancelled_ = false;
  bool closed_reported_ = false;
  bool write_in_flight_ = false;
  bool in_callback_ = false;
  std::thread::id callback_thread_;
  absl::Status create_error_;
  int64_t compact_revision_ = 0;
  std::chrono::steady_clock::time_point last_delivery_;
};

}  // namespace kelpie::store
