// The kernel half of the runtime security sensor: loads bpf/process.bpf.c
// and bpf/syscalls.bpf.c with the filters derived from the loaded rules,
// attaches them to raw tracepoints and hands every record to a callback.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kelpie/detect_abi.h"

namespace kelpie::dataplane {

struct DetectPrefix {
  std::string prefix;
  bool kill = false;  // exec of a path under it is killed in the kernel
};

struct DetectSensorOptions {
  // Ring buffer size per object in bytes (power of two, >= page size).
  uint32_t ring_buffer_bytes = 1u << 22;
  // Bit per kelpie_detect_kind the kernel reports.
  uint32_t kind_mask = 0xffffffffu;
  // Kinds whose path must start with one of `prefixes` to be reported.
  uint32_t path_filter_mask = 0;
  std::vector<DetectPrefix> prefixes;
  // Only report processes whose v2 cgroup is `watch_cgroup_id` or below it
  // (at depth `watch_cgroup_level`); 0 watches every cgroup.
  uint64_t watch_cgroup_id = 0;
  uint32_t watch_cgroup_level = 0;
  bool include_host = true;
  // The sensor's own process, never reported (0: report it too).
  uint32_t ignore_tgid = 0;
};

// Per-reason counters summed over CPUs and both programs.
using DetectCounters = std::array<uint64_t, KELPIE_DETECT_REASON_MAX>;

class DetectSensor {
 public:
  using RecordCallback = std::function<void(const kelpie_detect_event&)>;

  static absl::StatusOr<std::unique_ptr<DetectSensor>> Start(const DetectSensorOptions& options,
                                                             RecordCallback callback);
  ~DetectSensor();

  // Delivers ready records, waiting up to `timeout`; returns how many.
  absl::StatusOr<int> Poll(std::chrono::milliseconds timeout);
  absl::StatusOr<DetectCounters> Counters() const;

 private:
  struct Impl;
  explicit DetectSensor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Name of a counter index for metrics and messages ("kind", "cgroup", ...).
const char* DetectReasonName(int reason);

}  // namespace kelpie::dataplane
