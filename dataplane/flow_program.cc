#include "dataplane/flow_program.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "dataplane/bpf_skeleton.h"
#include "dataplane/libbpf_errors.h"
#include "dataplane/percpu_map.h"
#include "flow.skel.h"

namespace kelpie::dataplane {

struct FlowProgram::Impl {
  Impl(BpfSkeleton<struct flow> s, uint32_t max) : skel(std::move(s)), max_flows(max) {}
  BpfSkeleton<struct flow> skel;
  uint32_t max_flows = 0;
  std::vector<struct bpf_link*> cgroup_links;

  ~Impl() {
    // Links go before the skeleton (declared first, destroyed last).
    for (struct bpf_link* l : cgroup_links) bpf_link__destroy(l);
  }
};

absl::StatusOr<uint64_t> CgroupIdOfPath(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return absl::ErrnoToStatus(errno, absl::StrCat("stat ", path));
  if (!S_ISDIR(st.st_mode)) return absl::InvalidArgumentError(absl::StrCat(path, " is not a cgroup folder"));
  return static_cast<uint64_t>(st.st_ino);
}

kelpie_flow_cgroup_stats SumCgroupStats(const std::vector<kelpie_flow_cgroup_stats>& per_cpu) {
  kelpie_flow_cgroup_stats t{};
  for (const auto& s : per_cpu) {
    t.flows_opened += s.flows_opened;
    t.flows_closed += s.flows_closed;
    t.tx_bytes += s.tx_bytes;
    t.rx_bytes += s.rx_bytes;
    t.tx_packets += s.tx_packets;
    t.rx_packets += s.rx_packets;
    t.drops += s.drops;
  }
  return t;
}

absl::StatusOr<std::unique_ptr<FlowProgram>> FlowProgram::Start(const FlowProgramOptions& options) {
  auto skel = BpfSkeleton<struct flow>::Open(KELPIE_SKELETON_OPS(flow));
  if (!skel.ok()) return skel.status();
  (*skel)->rodata->report_interval_ns = options.report_interval_ns;
  (*skel)->rodata->wakeup_bytes = options.wakeup_bytes;
  ClearLibbpfMessages();
  if (int err = bpf_map__set_max_entries((*skel)->maps.flow_events, options.ring_buffer_bytes); err != 0) {
    return LibbpfError("sizing the flow ring buffer", err);
  }
  if (int err = bpf_map__set_max_entries((*skel)->maps.flows, options.max_flows); err != 0) {
    return LibbpfError("sizing the flow table", err);
  }
  if (absl::Status s = skel->Load(); !s.ok()) return s;
  if (absl::Status s = skel->Attach((*skel)->progs.flow_skb_dropped); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(std::move(*skel), options.max_flows);
  return std::unique_ptr<FlowProgram>(new FlowProgram(std::move(impl)));
}

FlowProgram::FlowProgram(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FlowProgram::~FlowProgram() = default;

absl::Status FlowProgram::AttachCgroup(const std::string& path) {
  auto id = CgroupIdOfPath(path);
  if (!id.ok()) return id.status();
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("opening cgroup ", path));
  for (struct bpf_program* prog : {impl_->skel->progs.flow_egress, impl_->skel->progs.flow_ingress}) {
    ClearLibbpfMessages();
    struct bpf_link* link = bpf_program__attach_cgroup(prog, fd);
    if (link == nullptr) {
      int err = -errno;
      close(fd);
      return LibbpfError(absl::StrCat("attaching ", bpf_program__name(prog), " to ", path), err);
    }
    impl_->cgroup_links.push_back(link);
  }
  close(fd);  // the links hold the cgroup
  return WatchCgroupId(*id);
}

absl::Status FlowProgram::WatchCgroupId(uint64_t cgroup_id) {
  __u8 one = 1;
  if (bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.watched_cgroups), &cgroup_id, &one, BPF_ANY) != 0) {
    return absl::ErrnoToStatus(errno, "adding the cgroup to watched_cgroups");
  }
  return absl::OkStatus();
}

int FlowProgram::events_fd() const { return bpf_map__fd(impl_->skel->maps.flow_events); }
int FlowProgram::flows_fd() const { return bpf_map__fd(impl_->skel->maps.flows); }

std::map<uint64_t, kelpie_flow_cgroup_stats> FlowProgram::CgroupStats() const {
  int fd = bpf_map__fd(impl_->skel->maps.flow_cgroups);
  std::map<uint64_t, kelpie_flow_cgroup_stats> out;
  uint64_t key = 0;
  uint64_t next = 0;
  uint64_t* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    auto values = LookupPerCpu<uint64_t, kelpie_flow_cgroup_stats>(fd, next);
    if (!values.empty()) out[next] = SumCgroupStats(values);
    key = next;
    prev = &key;
  }
  return out;
}

uint64_t FlowProgram::Skips(kelpie_flow_skip_reason reason) const {
  return SumPerCpuCounter(bpf_map__fd(impl_->skel->maps.flow_skips), static_cast<uint32_t>(reason));
}

uint64_t FlowProgram::FlowTableEntries() const {
  int fd = flows_fd();
  kelpie_flow_key key{};
  kelpie_flow_key next{};
  kelpie_flow_key* prev = nullptr;
  uint64_t n = 0;
  while (n <= impl_->max_flows && bpf_map_get_next_key(fd, prev, &next) == 0) {
    ++n;
    key = next;
    prev = &key;
  }
  return n;
}

uint64_t FlowProgram::FlowTableCapacity() const { return impl_->max_flows; }

std::vector<int> FlowProgram::ProgramFds() const {
  std::vector<int> fds;
  struct bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, impl_->skel->obj) {
    if (bpf_program__fd(prog) >= 0) fds.push_back(bpf_program__fd(prog));
  }
  return fds;
}

}  // namespace kelpie::dataplane
