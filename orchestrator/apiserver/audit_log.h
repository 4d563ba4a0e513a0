// The audit log: one audit.k8s.io/v1 Event per line (JSON), at level
// Metadata (who, what, when, the outcome; no bodies), written to a file by
// a background thread so a slow disk never holds a request for long. The
// queue is bounded: when it is full, events are dropped and counted
// (apiserver_audit_error_total{plugin="log"}), as kube-apiserver's
// non-blocking log backend does.
#pragma once

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/rotating_file.h"
#include "orchestrator/apiserver/user_info.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
}  // namespace prometheus

namespace kelpie::apiserver {

struct AuditEvent {
  std::string audit_id;
  std::string request_uri;
  std::string verb;
  UserInfo user;
  bool impersonated = false;
  UserInfo impersonated_user;
  std::vector<std::string> source_ips;
  std::string user_agent;
  // objectRef (absent for non-resource requests)
  bool has_object_ref = false;
  std::string resource;
  std::string namespace_name;
  std::string name;
  std::string api_group;
  std::string api_version;
  std::string subresource;
  int response_code = 0;
  std::string response_status;   // "Failure" for errors
  std::string response_reason;   // e.g. Forbidden
  std::string response_message;
  std::string request_received;  // RFC 3339 with microseconds
  std::string stage_timestamp;
  std::map<std::string, std::string> annotations;

  std::string ToJson() const;
};

// Now as RFC 3339 UTC with microseconds, as audit timestamps are written.
std::string AuditTimestampNow();

struct AuditLogOptions {
  std::string path;
  // Events waiting for the disk; beyond this they are dropped.
  size_t max_queued_events = 10000;
  // Size rotation as kube-apiserver's --audit-log-maxsize (here in bytes),
  // --audit-log-maxbackup and --audit-log-maxage; 0 turns each off.
  uint64_t max_bytes = 0;
  int max_backups = 0;
  int max_age_days = 0;
};

class AuditLog {
 public:
  // Opens (appends to) `options.path`, creating it with mode 0600.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(AuditLogOptions options,
                                                        prometheus::Registry* registry);
  ~AuditLog();  // writes what is queued, then closes

  // Never blocks on the disk.
  void Record(const AuditEvent& event);
  // Waits until every event recorded so far has been written.
  void Flush();

  uint64_t dropped() const;

 private:
  AuditLog() = default;
  void Run();

  AuditLogOptions options_;
  std::unique_ptr<RotatingFile> file_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable flushed_cv_;
  std::deque<std::string> queue_;
  uint64_t enqueued_ = 0;
  uint64_t written_ = 0;
  uint64_t dropped_ = 0;
  bool stopping_ = false;
  prometheus::Counter* events_total_ = nullptr;
  prometheus::Counter* errors_total_ = nullptr;
  std::thread writer_;
};

}  // namespace kelpie::apiserver
