#include "exporters/flows/flow_log.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "exporters/flows/flow_format.h"

namespace kelpie::flows {

absl::StatusOr<std::unique_ptr<FlowLog>> FlowLog::Start(FlowLogOptions options, FlowObserver& observer,
                                                        prometheus::Registry* registry) {
  auto file = RotatingFile::Open(options.file);
  if (!file.ok()) return absl::InvalidArgumentError(absl::StrCat("flow log ", file.status().message()));
  std::unique_ptr<FlowLog> log(new FlowLog(std::move(options), observer));
  if (log->options_.max_queued == 0) log->options_.max_queued = 1;
  log->file_ = std::move(*file);
  if (registry != nullptr) {
    auto& family = prometheus::BuildCounter()
                       .Name("kelpie_flow_log_flows_total")
                       .Help("Flows handed to the flow log, by outcome (written, dropped: the writer fell behind, "
                             "error: the file could not be written)")
                       .Register(*registry);
    log->written_total_ = &family.Add({{"outcome", "written"}});
    log->dropped_total_ = &family.Add({{"outcome", "dropped"}});
    log->errors_total_ = &family.Add({{"outcome", "error"}});
  }
  log->writer_ = std::thread([p = log.get()] { p->Run(); });
  FlowLog* self = log.get();
  log->subscription_ = observer.Subscribe(log->options_.query, [self](const Flow& f) { self->Enqueue(f); });
  return log;
}

FlowLog::~FlowLog() { Stop(); }

void FlowLog::Stop() {
  if (subscription_ != 0) {
    observer_.Unsubscribe(subscription_);
    subscription_ = 0;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void FlowLog::Enqueue(const Flow& flow) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    if (queue_.size() >= options_.max_queued) {
      ++dropped_;
      if (dropped_total_ != nullptr) dropped_total_->Increment();
      return;
    }
    queue_.push_back(flow);
    ++enqueued_;
  }
  cv_.notify_one();
}

void FlowLog::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = enqueued_;
  flushed_cv_.wait(lock, [&] { return written_ >= target; });
}

uint64_t FlowLog::written() const {
  std::lock_guard<std::mutex> lock(mu_);
  return written_;
}

uint64_t FlowLog::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

void FlowLog::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty() && stopping_) return;
    std::deque<Flow> batch;
    batch.swap(queue_);
    lock.unlock();
    // Whole lines per append, so a rotation never splits a flow; bounded
    // appends so one rotation check covers at most ~1 MiB.
    std::string data;
    size_t in_data = 0;
    uint64_t errors = 0;
    auto write = [&] {
      if (data.empty()) return;
      absl::Status s = file_->Append(data);
      if (!s.ok()) {
        errors += in_data;
        spdlog::error("flow log: {}", s.message());
      }
      data.clear();
      in_data = 0;
    };
    for (const Flow& f : batch) {
      data += FlowToJson(f).dump();
      data += '\n';
      ++in_data;
      if (data.size() >= (1u << 20)) write();
    }
    write();
    if (written_total_ != nullptr) written_total_->Increment(static_cast<double>(batch.size() - errors));
    if (errors > 0 && errors_total_ != nullptr) errors_total_->Increment(static_cast<double>(errors));
    lock.lock();
    written_ += batch.size();
    flushed_cv_.notify_all();
  }
}

}  // namespace kelpie::flows
