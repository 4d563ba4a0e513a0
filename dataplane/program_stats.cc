#include "dataplane/program_stats.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace kelpie::dataplane {

absl::StatusOr<ProgramRunStats> ReadProgramRunStats(int prog_fd) {
  struct bpf_prog_info info;
  std::memset(&info, 0, sizeof(info));
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) {
    return absl::ErrnoToStatus(errno, "reading BPF program info");
  }
  ProgramRunStats s;
  s.name = std::string(info.name, strnlen(info.name, sizeof(info.name)));
  s.run_count = info.run_cnt;
  s.run_time_ns = info.run_time_ns;
  return s;
}

bool BpfStatsSysctlEnabled() {
  std::ifstream in("/proc/sys/kernel/bpf_stats_enabled");
  int v = 0;
  return static_cast<bool>(in >> v) && v == 1;
}

absl::StatusOr<BpfStatsEnabler> BpfStatsEnabler::Enable() {
  int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) return absl::ErrnoToStatus(errno, "enabling BPF run statistics");
  return BpfStatsEnabler(fd);
}

BpfStatsEnabler::BpfStatsEnabler(BpfStatsEnabler&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
BpfStatsEnabler& BpfStatsEnabler::operator=(BpfStatsEnabler&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}
BpfStatsEnabler::~BpfStatsEnabler() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace kelpie::dataplane
