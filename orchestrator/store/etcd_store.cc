#include "orchestrator/store/etcd_store.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <list>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "orchestrator/store/etcd_codec.h"
#include "orchestrator/store/etcd_watch.h"
#include "proto/etcd/etcdserverpb/rpc.grpc.pb.h"

namespace kelpie::store {
namespace {

struct Endpoint {
  std::string address;  // host:port as dialled
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
};

std::string StripScheme(const std::string& url, bool* https) {
  *https = false;
  std::string rest = url;
  if (rest.rfind("https://", 0) == 0) {
    *https = true;
    rest = rest.substr(8);
  } else if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  return rest;
}

// etcd's spelling of "from key to the end of the prefix".
void SetRange(std::string_view prefix, const std::string& start, std::string* key,
              std::string* range_end) {
  std::string end = PrefixEnd(prefix);
  *key = start.empty() ? std::string(1, '\0') : start;
  *range_end = end.empty() ? std::string(1, '\0') : end;
}

class EtcdWatchHandle : public WatchHandle {
 public:
  explicit EtcdWatchHandle(std::shared_ptr<EtcdWatch> watch) : watch_(std::move(watch)) {}
  ~EtcdWatchHandle() override { Cancel(); }
  void Cancel() override { watch_->Cancel(); }
  bool RequestProgress() override { return watch_->RequestProgressNow(); }

 private:
  std::shared_ptr<EtcdWatch> watch_;
};

}  // namespace

class EtcdStoreImpl {
 public:
  explicit EtcdStoreImpl(EtcdStoreOptions options) : options_(std::move(options)) {}

  ~EtcdStoreImpl() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (progress_thread_.joinable()) progress_thread_.join();
    std::list<std::shared_ptr<EtcdWatch>> watches;
    {
      std::lock_guard lock(mu_);
      watches.swap(watches_);
    }
    for (auto& w : watches) w->Cancel();
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ == 0; });
  }

  absl::Status Init() {
    if (options_.endpoints.empty()) {
      return absl::InvalidArgumentError("the etcd store needs at least one endpoint");
    }
    std::shared_ptr<grpc::ChannelCredentials> tls;
    bool any_https = false;
    for (const std::string& url : options_.endpoints) {
      bool https;
      StripScheme(url, &https);
      any_https |= https;
    }
    if (any_https || !options_.ca_file.empty()) {
      grpc::SslCredentialsOptions ssl;
      if (!options_.ca_file.empty()) {
        KELPIE_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFileToString(options_.ca_file));
      }
      if (!options_.cert_file.empty() || !options_.key_file.empty()) {
        if (options_.cert_file.empty() || options_.key_file.empty()) {
          return absl::InvalidArgumentError(
              "an etcd client certificate needs both --etcd-certfile and --etcd-keyfile");
        }
        KELPIE_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadFileToString(options_.cert_file));
        KELPIE_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadFileToString(options_.key_file));
      }
      tls = grpc::SslCredentials(ssl);
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);  // large listings
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    for (const std::string& url : options_.endpoints) {
      bool https;
      Endpoint e;
      e.address = StripScheme(url, &https);
      e.channel = grpc::CreateCustomChannel(
          e.address, tls ? tls : grpc::InsecureChannelCredentials(), args);
      e.kv = etcdserverpb::KV::NewStub(e.channel);
      e.watch = etcdserverpb::Watch::NewStub(e.channel);
      e.lease = etcdserverpb::Lease::NewStub(e.channel);
      endpoints_.push_back(std::move(e));
    }
    absl::StatusOr<int64_t> revision = CurrentRevision();
    if (!revision.ok()) {
      return absl::UnavailableError(absl::StrCat("cannot reach etcd at ",
                                                 absl::StrJoin(options_.endpoints, ", "), ": ",
                                                 revision.status().message()));
    }
    progress_thread_ = std::thread([this] { ProgressLoop(); });
    return absl::OkStatus();
  }

  // Runs a unary call on the current endpoint, moving to the next one while
  // endpoints are unreachable.
  template <typename Call>
  absl::Status WithFailover(const Call& call) {
    grpc::Status last;
    const size_t n = endpoints_.size();
    const size_t first = current_.load();
    for (size_t attempt = 0; attempt < n; ++attempt) {
      const size_t i = (first + attempt) % n;
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + options_.request_timeout);
      last = call(endpoints_[i], &context);
      if (last.error_code() != grpc::StatusCode::UNAVAILABLE) {
        current_.store(i);
        return FromGrpc(last, endpoints_[i].address);
      }
    }
    return absl::UnavailableError(absl::StrCat("no etcd endpoint reachable (",
                                               absl::StrJoin(options_.endpoints, ", "),
                                               "): ", last.error_message()));
  }

  absl::StatusOr<int64_t> CurrentRevision() {
    etcdserverpb::RangeRequest request;
    request.set_key(std::string(1, '\0'));
    request.set_count_only(true);
    etcdserverpb::RangeResponse response;
    KELPIE_RETURN_IF_ERROR(WithFailover([&](Endpoint& e, grpc::ClientContext* c) {
      return e.kv->Range(c, request, &response);
    }));
    return response.header().revision();
  }

  absl::StatusOr<RangeResult> Range(std::string_view prefix, const RangeOptions& options) {
    etcdserverpb::RangeRequest request;
    std::string start = std::string(prefix);
    if (!options.start_key.empty() && options.start_key > start) start = options.start_key;
    SetRange(prefix, start, request.mutable_key(), request.mutable_range_end());
    request.set_limit(options.limit);
    request.set_revision(options.revision);
    request.set_count_only(options.count_only);
    etcdserverpb::RangeResponse response;
    KELPIE_RETURN_IF_ERROR(WithFailover([&](Endpoint& e, grpc::ClientContext* c) {
      return e.kv->Range(c, request, &response);
    }));
    RangeResult result;
    result.revision = options.revision > 0 ? options.revision : response.header().revision();
    result.count = response.count();
    result.more = response.more();
    result.kvs.reserve(static_cast<size_t>(response.kvs_size()));
    for (const mvccpb::KeyValue& kv : response.kvs()) result.kvs.push_back(FromEtcd(kv));
    if (result.more && !result.kvs.empty()) result.next_key = result.kvs.back().key + '\0';
    return result;
  }

  // One asynchronous unary call, re-issued on the next endpoint while
  // endpoints are unreachable (the request never reached etcd then).
  template <typename Request, typename Response>
  struct AsyncCall {
    Request request;
    Response response;
    std::unique_ptr<grpc::ClientContext> context;
    size_t endpoint = 0;
    size_t attempts = 0;
    // Starts the RPC on `e`; gRPC calls `on_done` when it ends.
    std::function<void(Endpoint& e, AsyncCall* call, std::function<void(grpc::Status)> on_done)>
        issue;
    std::function<void(const absl::Status& status, const Response& response)> finish;
  };

  template <typename Request, typename Response>
  void StartAsync(std::shared_ptr<AsyncCall<Request, Response>> call) {
    call->context = std::make_unique<grpc::ClientContext>();
    call->context->set_deadline(std::chrono::system_clock::now() + options_.request_timeout);
    call->response.Clear();
    AsyncCall<Request, Response>* raw = call.get();
    raw->issue(endpoints_[raw->endpoint], raw, [this, call](grpc::Status status) mutable {
      // Owns the call from here on, so its ClientContext is gone before
      // the store may be destroyed (which waits for in_flight_ to reach 0).
      std::shared_ptr<AsyncCall<Request, Response>> owned = std::move(call);
      if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
          ++owned->attempts < endpoints_.size()) {
        owned->endpoint = (owned->endpoint + 1) % endpoints_.size();
        current_.store(owned->endpoint);
        StartAsync(std::move(owned));
        return;
      }
      owned->finish(FromGrpc(status, endpoints_[owned->endpoint].address), owned->response);
      owned.reset();
      std::lock_guard lock(mu_);
      if (--in_flight_ == 0) cv_.notify_all();
    });
  }

  void TxnAsync(TxnRequest request, Callback<TxnResult> done) {
    absl::Status valid = ValidateTxn(request);
    if (!valid.ok()) {
      done(valid);
      return;
    }
    {
      std::lock_guard lock(mu_);
      ++in_flight_;
    }
    if (request.compares.empty() && request.success.size() == 1 &&
        request.success[0].type == Op::Type::kPut) {
      // An unconditional single put is etcd's cheaper Put call.
      using Call = AsyncCall<etcdserverpb::PutRequest, etcdserverpb::PutResponse>;
      auto call = std::make_shared<Call>();
      const Op& op = request.success[0];
      call->request.set_key(op.key);
      call->request.set_value(op.value);
      call->request.set_lease(op.lease);
      call->request.set_prev_kv(true);
      call->endpoint = current_.load();
      call->issue = [](Endpoint& e, Call* c, std::function<void(grpc::Status)> on_done) {
        e.kv->async()->Put(c->context.get(), &c->request, &c->response, std::move(on_done));
      };
      call->finish = [request = std::move(request), done = std::move(done)](
                         const absl::Status& status, const etcdserverpb::PutResponse& response) {
        if (!status.ok()) {
          done(status);
          return;
        }
        etcdserverpb::TxnResponse as_txn;
        *as_txn.mutable_header() = response.header();
        as_txn.set_succeeded(true);
        *as_txn.add_responses()->mutable_response_put() = response;
        done(FromEtcd(request, as_txn));
      };
      StartAsync(std::move(call));
      return;
    }
    using Call = AsyncCall<etcdserverpb::TxnRequest, etcdserverpb::TxnResponse>;
    auto call = std::make_shared<Call>();
    call->request = ToEtcd(request);
    call->endpoint = current_.load();
    call->issue = [](Endpoint& e, Call* c, std::function<void(grpc::Status)> on_done) {
      e.kv->async()->Txn(c->context.get(), &c->request, &c->response, std::move(on_done));
    };
    call->finish = [request = std::move(request), done = std::move(done)](
                       const absl::Status& status, const etcdserverpb::TxnResponse& response) {
      if (status.ok()) {
        done(FromEtcd(request, response));
      } else {
        done(status);
      }
    };
    StartAsync(std::move(call));
  }

  absl::Status Compact(int64_t revision) {
    etcdserverpb::CompactionRequest request;
    request.set_revision(revision);
    etcdserverpb::CompactionResponse response;
    KELPIE_RETURN_IF_ERROR(WithFailover([&](Endpoint& e, grpc::ClientContext* c) {
      return e.kv->Compact(c, request, &response);
    }));
    int64_t seen = compacted_.load();
    while (seen < revision && !compacted_.compare_exchange_weak(seen, revision)) {
    }
    return absl::OkStatus();
  }

  int64_t CompactedRevision() {
    int64_t best = compacted_.load();
    std::lock_guard lock(mu_);
    for (auto& w : watches_) best = std::max(best, w->compact_revision());
    return best;
  }

  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(const WatchOptions& options,
                                                     WatchConsumer consumer) {
    if (!consumer.on_events) {
      return absl::InvalidArgumentError("a watch needs an on_events callback");
    }
    if (options.start_revision > 1) {
      // etcd reports a compacted start asynchronously; a read just below
      // the start revision answers the same question synchronously.
      RangeOptions probe;
      probe.revision = options.start_revision - 1;
      probe.count_only = true;
      probe.limit = 1;
      KELPIE_RETURN_IF_ERROR(Range(options.prefix, probe).status());
    }
    absl::Status last;
    const size_t n = endpoints_.size();
    const size_t first = current_.load();
    for (size_t attempt = 0; attempt < n; ++attempt) {
      const size_t i = (first + attempt) % n;
      auto watch = std::make_shared<EtcdWatch>(options, consumer, endpoints_[i].address);
      {
        std::lock_guard lock(mu_);
        if (stopping_) return absl::UnavailableError("the store is shutting down");
        // Kept here until the stream is done: the reactor must outlive it.
        watches_.push_back(watch);
      }
      last = watch->Start(endpoints_[i].watch.get(), options_.request_timeout);
      if (last.ok()) {
        current_.store(i);
        return std::make_unique<EtcdWatchHandle>(std::move(watch));
      }
      if (last.code() != absl::StatusCode::kUnavailable) return last;
    }
    return last;
  }

  absl::StatusOr<LeaseInfo> GrantLease(std::chrono::seconds ttl) {
    etcdserverpb::LeaseGrantRequest request;
    request.set_ttl(ttl.count());
    etcdserverpb::LeaseGrantResponse response;
    KELPIE_RETURN_IF_ERROR(WithFailover([&](Endpoint& e, grpc::ClientContext* c) {
      return e.lease->LeaseGrant(c, request, &response);
    }));
    if (!response.error().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("etcd refused the lease: ", response.error()));
    }
    return LeaseInfo{response.id(), response.ttl()};
  }

  absl::Status RevokeLease(int64_t id) {
    etcdserverpb::LeaseRevokeRequest request;
    request.set_id(id);
    etcdserverpb::LeaseRevokeResponse response;
    return WithFailover([&](Endpoint& e, grpc::ClientContext* c) {
      return e.lease->LeaseRevoke(c, request, &response);
    });
  }

  absl::StatusOr<LeaseInfo> KeepAliveLease(int64_t id) {
    etcdserverpb::LeaseKeepAliveResponse response;
    KELPIE_RETURN_IF_ERROR(WithFailover([&](Endpoint& e, grpc::ClientContext* c) {
      auto stream = e.lease->LeaseKeepAlive(c);
      etcdserverpb::LeaseKeepAliveRequest request;
      request.set_id(id);
      if (stream->Write(request)) stream->Read(&response);
      stream->WritesDone();
      return stream->Finish();
    }));
    if (response.ttl() <= 0) {
      return absl::NotFoundError(absl::StrCat("lease ", id, " not found (expired or revoked)"));
    }
    return LeaseInfo{id, response.ttl()};
  }

 private:
  void ProgressLoop() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stopping_; })) {
      auto now = std::chrono::steady_clock::now();
      for (auto it = watches_.begin(); it != watches_.end();) {
        if ((*it)->finished()) {
          it = watches_.erase(it);
        } else {
          (*it)->MaybeRequestProgress(now);
          ++it;
        }
      }
    }
  }

  const EtcdStoreOptions options_;
  std::vector<Endpoint> endpoints_;
  std::atomic<size_t> current_{0};
  std::atomic<int64_t> compacted_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  int64_t in_flight_ = 0;
  std::list<std::shared_ptr<EtcdWatch>> watches_;
  std::thread progress_thread_;
};

EtcdStore::EtcdStore(std::unique_ptr<EtcdStoreImpl> impl) : impl_(std::move(impl)) {}
EtcdStore::~EtcdStore() = default;

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::Open(const EtcdStoreOptions& options) {
  auto impl = std::make_unique<EtcdStoreImpl>(options);
  KELPIE_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<EtcdStore>(new EtcdStore(std::move(impl)));
}

absl::StatusOr<RangeResult> EtcdStore::Range(std::string_view prefix,
                                             const RangeOptions& options) {
  return impl_->Range(prefix, options);
}
void EtcdStore::TxnAsync(TxnRequest request, Callback<TxnResult> done) {
  impl_->TxnAsync(std::move(request), std::move(done));
}
absl::Status EtcdStore::Compact(int64_t revision) { return impl_->Compact(revision); }
absl::StatusOr<int64_t> EtcdStore::CurrentRevision() { return impl_->CurrentRevision(); }
int64_t EtcdStore::CompactedRevision() { return impl_->CompactedRevision(); }
absl::StatusOr<std::unique_ptr<WatchHandle>> EtcdStore::Watch(const WatchOptions& options,
                                                              WatchConsumer consumer) {
  return impl_->Watch(options, std::move(consumer));
}
absl::StatusOr<LeaseInfo> EtcdStore::GrantLease(std::chrono::seconds ttl) {
  return impl_->GrantLease(ttl);
}
absl::Status EtcdStore::RevokeLease(int64_t id) { return impl_->RevokeLease(id); }
absl::StatusOr<LeaseInfo> EtcdStore::KeepAliveLease(int64_t id) {
  return impl_->KeepAliveLease(id);
}

}  // namespace kelpie::store
