// The tcp_health BPF object (bpf/tcp_health.bpf.c) loaded and attached to
// its raw tracepoints, and the read side of its maps, which the exporters
// read at scrape time through the TcpHealthReader interface.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kelpie/flow_abi.h"

namespace kelpie::dataplane {

// Sums over CPUs of the TCP health maps.
class TcpHealthReader {
 public:
  virtual ~TcpHealthReader() = default;
  virtual kelpie_log2_hist Histogram(kelpie_tcp_hist which) const = 0;
  virtual uint64_t Counter(kelpie_tcp_counter which) const = 0;
  // Non-zero packet drop counts by kernel drop reason number.
  virtual std::map<uint32_t, uint64_t> DropCounts() const = 0;
  // Program fds with names, for run statistics.
  virtual std::vector<int> ProgramFds() const { return {}; }
};

struct TcpHealthOptions {
  uint64_t filter_cgroup_id = 0;  // 0: every socket of the node
  uint32_t probe_sample_every = 16;
};

class TcpHealthProgram final : public TcpHealthReader {
 public:
  static absl::StatusOr<std::unique_ptr<TcpHealthProgram>> Start(const TcpHealthOptions& options);
  ~TcpHealthProgram() override;

  kelpie_log2_hist Histogram(kelpie_tcp_hist which) const override;
  uint64_t Counter(kelpie_tcp_counter which) const override;
  std::map<uint32_t, uint64_t> DropCounts() const override;
  std::vector<int> ProgramFds() const override;

 private:
  struct Impl;
  explicit TcpHealthProgram(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Adds the per-CPU values of a histogram into one.
kelpie_log2_hist SumHistograms(const std::vector<kelpie_log2_hist>& per_cpu);

}  // namespace kelpie::dataplane
