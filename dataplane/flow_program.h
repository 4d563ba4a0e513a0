// The flow BPF object (bpf/flow.bpf.c): cgroup_skb ingress/egress programs
// attached to watched cgroups (pods), the kfree_skb raw tracepoint that
// attributes drops to flows, the flow event ring buffer, and the read side
// of its counters (FlowStatsReader, read at scrape time).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kelpie/flow_abi.h"

namespace kelpie::dataplane {

class FlowStatsReader {
 public:
  virtual ~FlowStatsReader() = default;
  // Totals per watched cgroup id, summed over CPUs.
  virtual std::map<uint64_t, kelpie_flow_cgroup_stats> CgroupStats() const = 0;
  virtual uint64_t Skips(kelpie_flow_skip_reason reason) const = 0;
  // Entries in the flow table and its capacity (map pressure).
  virtual uint64_t FlowTableEntries() const = 0;
  virtual uint64_t FlowTableCapacity() const = 0;
  virtual std::vector<int> ProgramFds() const { return {}; }
};

struct FlowProgramOptions {
  uint32_t ring_buffer_bytes = 1 << 20;  // power of two, >= page size
  uint64_t report_interval_ns = 10ULL * 1000 * 1000 * 1000;
  uint32_t max_flows = 65536;
  // Readers are woken once this many bytes of events wait; a reader polling
  // with a timeout drains the rest (RingBufferSource does).
  uint64_t wakeup_bytes = 64 * 1024;
};

class FlowProgram final : public FlowStatsReader {
 public:
  static absl::StatusOr<std::unique_ptr<FlowProgram>> Start(const FlowProgramOptions& options);
  ~FlowProgram() override;

  // Attaches ingress and egress to the cgroup v2 folder `path` and starts
  // attributing its sockets' drops. Detached when this object goes away.
  absl::Status AttachCgroup(const std::string& path);

  // Attributes drops of sockets in this cgroup too (cgroups below an
  // attached folder, e.g. a pod's container folders, have ids of their own).
  absl::Status WatchCgroupId(uint64_t cgroup_id);

  int events_fd() const;  // the ring buffer of kelpie_flow_event
  int flows_fd() const;   // the LRU hash of kelpie_flow_key -> kelpie_flow_stats

  std::map<uint64_t, kelpie_flow_cgroup_stats> CgroupStats() const override;
  uint64_t Skips(kelpie_flow_skip_reason reason) const override;
  uint64_t FlowTableEntries() const override;
  uint64_t FlowTableCapacity() const override;
  std::vector<int> ProgramFds() const override;

 private:
  struct Impl;
  explicit FlowProgram(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The cgroup v2 id of a cgroup folder (its inode number, which is what
// bpf_skb_cgroup_id() and bpf_get_current_cgroup_id() return).
absl::StatusOr<uint64_t> CgroupIdOfPath(const std::string& path);

// Sums the per-CPU values of one flow_cgroups entry.
kelpie_flow_cgroup_stats SumCgroupStats(const std::vector<kelpie_flow_cgroup_stats>& per_cpu);

}  // namespace kelpie::dataplane
