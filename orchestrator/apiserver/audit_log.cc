#include "orchestrator/apiserver/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"

namespace kelpie::apiserver {

using nlohmann::json;

namespace {

json UserJson(const UserInfo& u) {
  json j = {{"username", u.name}};
  if (!u.uid.empty()) j["uid"] = u.uid;
  if (!u.groups.empty()) j["groups"] = u.groups;
  if (!u.extra.empty()) j["extra"] = u.extra;
  return j;
}

}  // namespace

std::string AuditTimestampNow() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(now);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now - secs).count();
  std::time_t t = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                         tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(micros));
}

std::string AuditEvent::ToJson() const {
  json j = {{"kind", "Event"},
            {"apiVersion", "audit.k8s.io/v1"},
            {"level", "Metadata"},
            {"auditID", audit_id},
            {"stage", "ResponseComplete"},
            {"requestURI", request_uri},
            {"verb", verb},
            {"user", UserJson(user)},
            {"sourceIPs", source_ips}};
  if (impersonated) j["impersonatedUser"] = UserJson(impersonated_user);
  if (!user_agent.empty()) j["userAgent"] = user_agent;
  if (has_object_ref) {
    json ref = {{"resource", resource}};
    if (!namespace_name.empty()) ref["namespace"] = namespace_name;
    if (!name.empty()) ref["name"] = name;
    ref["apiGroup"] = api_group;
    ref["apiVersion"] = api_version;
    if (!subresource.empty()) ref["subresource"] = subresource;
    j["objectRef"] = ref;
  }
  json status = {{"metadata", json::object()}, {"code", response_code}};
  if (!response_status.empty()) status["status"] = response_status;
  if (!response_reason.empty()) status["reason"] = response_reason;
  if (!response_message.empty()) status["message"] = response_message;
  j["responseStatus"] = status;
  j["requestReceivedTimestamp"] = request_received;
  j["stageTimestamp"] = stage_timestamp;
  if (!annotations.empty()) j["annotations"] = annotations;
  return j.dump();
}

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(AuditLogOptions options, prometheus::Registry* registry) {
  RotatingFileOptions fo;
  fo.path = options.path;
  fo.max_bytes = options.max_bytes;
  fo.max_backups = options.max_backups;
  fo.max_age_days = options.max_age_days;
  auto file = RotatingFile::Open(fo);
  if (!file.ok()) return absl::InvalidArgumentError(absl::StrCat("audit log ", file.status().message()));
  auto log = std::unique_ptr<AuditLog>(new AuditLog());
  log->options_ = std::move(options);
  if (log->options_.max_queued_events == 0) log->options_.max_queued_events = 1;
  log->file_ = std::move(*file);
  if (registry != nullptr) {
    log->events_total_ = &prometheus::BuildCounter()
                              .Name("apiserver_audit_event_total")
                              .Help("Counter of audit events generated and sent to the audit backend.")
                              .Register(*registry)
                              .Add({});
    log->errors_total_ = &prometheus::BuildCounter()
                              .Name("apiserver_audit_error_total")
                              .Help("Counter of audit events that failed to be audited properly (dropped "
                                    "because the queue was full, or not written).")
                              .Register(*registry)
                              .Add({{"plugin", "log"}});
  }
  log->writer_ = std::thread([p = log.get()] { p->Run(); });
  return log;
}

AuditLog::~AuditLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void AuditLog::Record(const AuditEvent& event) {
  std::string line = event.ToJson();
  line += '\n';
  if (events_total_ != nullptr) events_total_->Increment();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= options_.max_queued_events) {
      ++dropped_;
      if (errors_total_ != nullptr) errors_total_->Increment();
      return;
    }
    queue_.push_back(std::move(line));
    ++enqueued_;
  }
  cv_.notify_one();
}

void AuditLog::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t target = enqueued_;
  flushed_cv_.wait(lock, [&] { return written_ >= target; });
}

uint64_t AuditLog::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

void AuditLog::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty() && stopping_) return;
    std::deque<std::string> batch;
    batch.swap(queue_);
    lock.unlock();
    std::string data;
    for (auto& l : batch) data += l;
    // One append per batch: a rotation happens between batches, never
    // inside an event.
    absl::Status written = file_->Append(data);
    const bool failed = !written.ok();
    if (failed) spdlog::error("audit log: {}", written.message());
    if (failed && errors_total_ != nullptr) errors_total_->Increment(static_cast<double>(batch.size()));
    lock.lock();
    written_ += batch.size();
    flushed_cv_.notify_all();
  }
}

}  // namespace kelpie::apiserver
