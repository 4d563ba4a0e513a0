#include "orchestrator/store/etcd_watch.h"

#include "absl/strings/str_cat.h"
#include "orchestrator/store/etcd_codec.h"

namespace kelpie::store {

EtcdWatch::EtcdWatch(const WatchOptions& options, WatchConsumer consumer, std::string endpoint)
    : options_(options),
      consumer_(std::move(consumer)),
      endpoint_(std::move(endpoint)),
      last_delivery_(std::chrono::steady_clock::now()) {}

absl::Status EtcdWatch::Start(etcdserverpb::Watch::Stub* stub,
                              std::chrono::milliseconds timeout) {
  etcdserverpb::WatchRequest create;
  auto* c = create.mutable_create_request();
  // etcd spells "every key" as key "\0" with range_end "\0".
  std::string end = PrefixEnd(options_.prefix);
  c->set_key(options_.prefix.empty() ? std::string(1, '\0') : options_.prefix);
  c->set_range_end(end.empty() ? std::string(1, '\0') : end);
  c->set_start_revision(options_.start_revision);
  c->set_prev_kv(options_.prev_kv);
  c->set_progress_notify(options_.progress_notify);
  stub->async()->Watch(&context_, this);
  {
    std::lock_guard lock(mu_);
    Write(std::move(create));
  }
  StartRead(&response_);
  StartCall();
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return created_ || done_; })) {
    lock.unlock();
    Cancel();
    return absl::DeadlineExceededError(
        absl::StrCat("etcd ", endpoint_, " did not confirm the watch within ", timeout.count(),
                     " ms"));
  }
  if (!create_error_.ok()) return create_error_;
  if (!created_) {
    return absl::UnavailableError(absl::StrCat("etcd ", endpoint_, " ended the watch stream"));
  }
  return absl::OkStatus();
}

void EtcdWatch::Write(etcdserverpb::WatchRequest request) {
  request_ = std::move(request);
  write_in_flight_ = true;
  StartWrite(&request_);
}

void EtcdWatch::OnWriteDone(bool) {
  std::lock_guard lock(mu_);
  write_in_flight_ = false;
}

void EtcdWatch::OnReadDone(bool ok) {
  if (!ok) return;  // the stream is ending; OnDone follows
  etcdserverpb::WatchResponse response = std::move(response_);
  response_.Clear();
  std::unique_lock lock(mu_);
  if (response.canceled()) {
    absl::Status reason;
    if (response.compact_revision() > 0) {
      compact_revision_ = std::max(compact_revision_, response.compact_revision());
      reason = absl::OutOfRangeError(
          absl::StrCat(std::string(kCompactedMessage), " (etcd ", endpoint_,
                       " compacted through ", response.compact_revision(), ")"));
    } else {
      reason = absl::UnavailableError(
          absl::StrCat("etcd ", endpoint_, " cancelled the watch: ", response.cancel_reason()));
    }
    if (!created_) {
      created_ = true;
      create_error_ = reason;
      cv_.notify_all();
    } else if (!cancelled_ && !closed_reported_) {
      closed_reported_ = true;
      in_callback_ = true;
      callback_thread_ = std::this_thread::get_id();
      lock.unlock();
      if (consumer_.on_close) consumer_.on_close(reason);
      lock.lock();
      in_callback_ = false;
      callback_thread_ = std::thread::id();
    }
    lock.unlock();
    context_.TryCancel();
    return;
  }
  if (response.created() && !created_) {
    created_ = true;
    cv_.notify_all();
    lock.unlock();
    StartRead(&response_);
    return;
  }
  last_delivery_ = std::chrono::steady_clock::now();
  if (!cancelled_) {
    WatchBatch batch;
    batch.revision = response.header().revision();
    batch.events.reserve(static_cast<size_t>(response.events_size()));
    for (const mvccpb::Event& e : response.events()) batch.events.push_back(FromEtcd(e));
    in_callback_ = true;
    callback_thread_ = std::this_thread::get_id();
    lock.unlock();
    consumer_.on_events(std::move(batch));
    lock.lock();
    in_callback_ = false;
    callback_thread_ = std::thread::id();
    cv_.notify_all();
  }
  lock.unlock();
  StartRead(&response_);
}

void EtcdWatch::OnDone(const grpc::Status& status) {
  std::unique_lock lock(mu_);
  if (!created_) {
    create_error_ = status.ok() ? absl::UnavailableError(absl::StrCat(
                                      "etcd ", endpoint_, " ended the watch stream"))
                                : FromGrpc(status, endpoint_);
  } else if (!cancelled_ && !closed_reported_) {
    closed_reported_ = true;
    in_callback_ = true;
    callback_thread_ = std::this_thread::get_id();
    lock.unlock();
    absl::Status reason = status.ok() || status.error_code() == grpc::StatusCode::CANCELLED
                              ? absl::UnavailableError(
                                    absl::StrCat("etcd ", endpoint_, " ended the watch stream"))
                              : FromGrpc(status, endpoint_);
    if (consumer_.on_close) consumer_.on_close(reason);
    lock.lock();
    in_callback_ = false;
  }
  done_ = true;
  cv_.notify_all();
}

void EtcdWatch::Cancel() {
  {
    std::lock_guard lock(mu_);
    if (done_) return;
    cancelled_ = true;
  }
  context_.TryCancel();
  std::unique_lock lock(mu_);
  if (callback_thread_ == std::this_thread::get_id()) return;
  cv_.wait(lock, [&] { return done_; });
}

void EtcdWatch::MaybeRequestProgress(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  if (!options_.progress_notify || done_ || cancelled_ || !created_ || write_in_flight_ ||
      now - last_delivery_ < options_.progress_interval) {
    return;
  }
  last_delivery_ = now;
  etcdserverpb::WatchRequest progress;
  progress.mutable_progress_request();
  Write(std::move(progress));
}

bool EtcdWatch::RequestProgressNow() {
  std::lock_guard lock(mu_);
  if (done_ || cancelled_ || !created_) return false;
  // One request in flight is enough: its answer carries the newest revision.
  if (write_in_flight_) return true;
  last_delivery_ = std::chrono::steady_clock::now();
  etcdserverpb::WatchRequest progress;
  progress.mutable_progress_request();
  Write(std::move(progress));
  return true;
}

bool EtcdWatch::finished() {
  std::lock_guard lock(mu_);
  return done_;
}

int64_t EtcdWatch::compact_revision() {
  std::lock_guard lock(mu_);
  return compact_revision_;
}

}  // namespace kelpie::store
