// Run statistics of loaded BPF programs (bpf_prog_info run_cnt and
// run_time_ns), which the kernel only counts while stats are enabled:
// globally by the kernel.bpf_stats_enabled sysctl, or while someone holds
// the file descriptor of BPF_ENABLE_STATS.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace kelpie::dataplane {

struct ProgramRunStats {
  std::string name;
  uint64_t run_count = 0;
  uint64_t run_time_ns = 0;
};

absl::StatusOr<ProgramRunStats> ReadProgramRunStats(int prog_fd);

// True when /proc/sys/kernel/bpf_stats_enabled reads 1.
bool BpfStatsSysctlEnabled();

// Turns run statistics on for as long as the object lives (BPF_ENABLE_STATS);
// no effect on the sysctl.
class BpfStatsEnabler {
 public:
  static absl::StatusOr<BpfStatsEnabler> Enable();
  BpfStatsEnabler(BpfStatsEnabler&& other) noexcept;
  BpfStatsEnabler& operator=(BpfStatsEnabler&& other) noexcept;
  BpfStatsEnabler(const BpfStatsEnabler&) = delete;
  BpfStatsEnabler& operator=(const BpfStatsEnabler&) = delete;
  ~BpfStatsEnabler();

 private:
  explicit BpfStatsEnabler(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace kelpie::dataplane
