#include "dataplane/tcp_health_program.h"

#include <cstring>

#include "dataplane/bpf_skeleton.h"
#include "dataplane/percpu_map.h"
#include "tcp_health.skel.h"

namespace kelpie::dataplane {

struct TcpHealthProgram::Impl {
  explicit Impl(BpfSkeleton<struct tcp_health> s) : skel(std::move(s)) {}
  BpfSkeleton<struct tcp_health> skel;
};

kelpie_log2_hist SumHistograms(const std::vector<kelpie_log2_hist>& per_cpu) {
  kelpie_log2_hist total;
  std::memset(&total, 0, sizeof(total));
  for (const kelpie_log2_hist& h : per_cpu) {
    for (int i = 0; i < KELPIE_LOG2_SLOTS; ++i) total.slots[i] += h.slots[i];
    total.count += h.count;
    total.sum += h.sum;
  }
  return total;
}

absl::StatusOr<std::unique_ptr<TcpHealthProgram>> TcpHealthProgram::Start(const TcpHealthOptions& options) {
  auto skel = BpfSkeleton<struct tcp_health>::Open(KELPIE_SKELETON_OPS(tcp_health));
  if (!skel.ok()) return skel.status();
  (*skel)->rodata->filter_cgroup_id = options.filter_cgroup_id;
  (*skel)->rodata->probe_sample_every = options.probe_sample_every;
  if (absl::Status s = skel->Load(); !s.ok()) return s;
  // Every program is a raw tracepoint: the skeleton attaches them all, no
  // tracefs needed.
  if (absl::Status s = skel->AttachAll(); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(std::move(*skel));
  return std::unique_ptr<TcpHealthProgram>(new TcpHealthProgram(std::move(impl)));
}

TcpHealthProgram::TcpHealthProgram(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TcpHealthProgram::~TcpHealthProgram() = default;

kelpie_log2_hist TcpHealthProgram::Histogram(kelpie_tcp_hist which) const {
  int fd = bpf_map__fd(impl_->skel->maps.tcp_hists);
  return SumHistograms(LookupPerCpu<uint32_t, kelpie_log2_hist>(fd, static_cast<uint32_t>(which)));
}

uint64_t TcpHealthProgram::Counter(kelpie_tcp_counter which) const {
  return SumPerCpuCounter(bpf_map__fd(impl_->skel->maps.tcp_counters), static_cast<uint32_t>(which));
}

std::map<uint32_t, uint64_t> TcpHealthProgram::DropCounts() const {
  int fd = bpf_map__fd(impl_->skel->maps.drop_reasons);
  std::map<uint32_t, uint64_t> out;
  // One batch would be faster, but 512 lookups at scrape time cost ~0.2 ms.
  for (uint32_t reason = 0; reason < KELPIE_DROP_REASON_SLOTS; ++reason) {
    uint64_t n = SumPerCpuCounter(fd, reason);
    if (n != 0) out[reason] = n;
  }
  return out;
}

std::vector<int> TcpHealthProgram::ProgramFds() const {
  std::vector<int> fds;
  struct bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, impl_->skel->obj) {
    if (bpf_program__fd(prog) >= 0) fds.push_back(bpf_program__fd(prog));
  }
  return fds;
}

}  // namespace kelpie::dataplane
