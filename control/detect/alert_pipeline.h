// Rule matches to alerts: JSON documents with the full attribution, written
// to sinks (JSON lines file with size rotation, a stream), de-duplicated
// per rule + container + process within a window, counted in
// kelpie_alerts_total{rule,priority,namespace}, and the kill action taken
// from user space (pidfd) when the kernel has not already done it.
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "control/detect/engine.h"
#include "common/rotating_file.h"
#include "control/detect/event.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
}  // namespace prometheus

namespace kelpie::detect {

class AlertSink {
 public:
  virtual ~AlertSink() = default;
  // One alert as a single JSON line (no trailing newline).
  virtual absl::Status Write(const std::string& line) = 0;
};

// Appends lines to `path` (mode 0600); past `max_bytes` it is rotated as
// common/rotating_file.h names backups, keeping the newest `keep` of them.
class JsonLinesFileSink final : public AlertSink {
 public:
  static absl::StatusOr<std::unique_ptr<JsonLinesFileSink>> Open(std::string path, uint64_t max_bytes, int keep);
  absl::Status Write(const std::string& line) override;

 private:
  explicit JsonLinesFileSink(std::unique_ptr<RotatingFile> file) : file_(std::move(file)) {}
  std::unique_ptr<RotatingFile> file_;
};

class StreamSink final : public AlertSink {
 public:
  explicit StreamSink(std::ostream& out) : out_(out) {}
  absl::Status Write(const std::string& line) override;

 private:
  std::ostream& out_;
};

struct AlertPipelineOptions {
  std::string node_name;
  // Matches of the same rule by the same process in the same container
  // within the window raise one alert; the next alert after the window
  // carries the count.
  std::chrono::milliseconds dedup_window{10000};
  // Take `action: kill` from user space (pidfd_send_signal).
  bool enforce = true;
};

struct AlertStats {
  uint64_t raised = 0;
  uint64_t suppressed = 0;
  uint64_t killed = 0;
};

class AlertPipeline {
 public:
  AlertPipeline(AlertPipelineOptions options, std::vector<AlertSink*> sinks, prometheus::Registry* registry);
  ~AlertPipeline();

  // One rule match. `killed_in_kernel` when the BPF program sent SIGKILL.
  // `ancestor_pids` parallel to event.proc.ancestors. Returns the JSON line
  // written, or an empty string when de-duplicated.
  std::string OnMatch(const CompiledRule& rule, const Event& event, const std::vector<int64_t>& ancestor_pids,
                      bool killed_in_kernel, std::chrono::steady_clock::time_point now);

  const AlertStats& stats() const { return stats_; }

 private:
  struct Window {
    std::chrono::steady_clock::time_point opened;
    uint64_t matches = 0;  // since the last alert written
  };
  AlertPipelineOptions options_;
  std::vector<AlertSink*> sinks_;
  prometheus::Family<prometheus::Counter>* alerts_total_ = nullptr;
  prometheus::Family<prometheus::Counter>* suppressed_total_ = nullptr;
  std::map<std::tuple<std::string, std::string, int64_t>, Window> windows_;
  AlertStats stats_;
};

}  // namespace kelpie::detect
