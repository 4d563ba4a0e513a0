#include "dataplane/detect_sensor.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "dataplane/bpf_skeleton.h"
#include "dataplane/libbpf_errors.h"
#include "dataplane/ring_buffer_source.h"
#include "process.skel.h"
#include "syscalls.skel.h"

namespace kelpie::dataplane {
namespace {

// Both objects share the configuration layout of detect_common.bpf.h, so
// one template configures either skeleton.
template <typename Skel>
absl::Status Configure(BpfSkeleton<Skel>& skel, const DetectSensorOptions& o) {
  auto* ro = skel->rodata;
  ro->kind_mask = o.kind_mask;
  ro->path_filter_mask = o.path_filter_mask;
  ro->watch_cgroup_id = o.watch_cgroup_id;
  ro->watch_cgroup_level = o.watch_cgroup_level;
  ro->include_host = o.include_host ? 1 : 0;
  ro->ignore_tgid = o.ignore_tgid;
  if (int err = bpf_map__set_max_entries(skel->maps.events, o.ring_buffer_bytes); err != 0) {
    return LibbpfError("sizing the detection ring buffer", err);
  }
  return absl::OkStatus();
}

template <typename Skel>
absl::Status FillPrefixes(BpfSkeleton<Skel>& skel, const std::vector<DetectPrefix>& prefixes) {
  int fd = bpf_map__fd(skel->maps.prefixes);
  for (uint32_t i = 0; i < prefixes.size(); ++i) {
    kelpie_detect_prefix value{};
    value.len = static_cast<uint32_t>(prefixes[i].prefix.size());
    value.kill = prefixes[i].kill ? 1 : 0;
    std::memcpy(value.bytes, prefixes[i].prefix.data(), value.len);
    if (bpf_map_update_elem(fd, &i, &value, BPF_ANY) != 0) {
      return LibbpfError("writing detection path prefixes", -errno);
    }
  }
  return absl::OkStatus();
}

template <typename Skel>
absl::Status AddCounters(const BpfSkeleton<Skel>& skel, DetectCounters& out) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return LibbpfError("counting CPUs", cpus);
  std::vector<uint64_t> values(static_cast<size_t>(cpus));
  int fd = bpf_map__fd(skel->maps.counters);
  for (uint32_t reason = 0; reason < KELPIE_DETECT_REASON_MAX; ++reason) {
    if (bpf_map_lookup_elem(fd, &reason, values.data()) != 0) {
      return LibbpfError("reading detection counters", -errno);
    }
    for (uint64_t v : values) out[reason] += v;
  }
  return absl::OkStatus();
}

}  // namespace

struct DetectSensor::Impl {
  BpfSkeleton<struct process> process;
  BpfSkeleton<struct syscalls> syscalls;
  RecordCallback callback;
  std::unique_ptr<RingBufferSource> process_events;
  std::unique_ptr<RingBufferSource> syscall_events;
};

DetectSensor::DetectSensor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DetectSensor::~DetectSensor() = default;

absl::StatusOr<std::unique_ptr<DetectSensor>> DetectSensor::Start(const DetectSensorOptions& options,
                                                                  RecordCallback callback) {
  if (options.prefixes.size() > KELPIE_DETECT_MAX_PREFIXES) {
    return absl::InvalidArgumentError(
        absl::StrCat("at most ", KELPIE_DETECT_MAX_PREFIXES, " in-kernel path prefixes, got ", options.prefixes.size()));
  }
  for (const DetectPrefix& p : options.prefixes) {
    if (p.prefix.empty() || p.prefix.size() > KELPIE_DETECT_PREFIX_LEN) {
      return absl::InvalidArgumentError(absl::StrCat("in-kernel path prefix \"", p.prefix, "\" must have 1 to ",
                                                     KELPIE_DETECT_PREFIX_LEN, " bytes"));
    }
  }
  auto process = BpfSkeleton<struct process>::Open(KELPIE_SKELETON_OPS(process));
  if (!process.ok()) return process.status();
  auto syscalls = BpfSkeleton<struct syscalls>::Open(KELPIE_SKELETON_OPS(syscalls));
  if (!syscalls.ok()) return syscalls.status();
  if (auto s = Configure(*process, options); !s.ok()) return s;
  if (auto s = Configure(*syscalls, options); !s.ok()) return s;
  if (auto s = process->Load(); !s.ok()) return s;
  if (auto s = syscalls->Load(); !s.ok()) return s;
  if (auto s = FillPrefixes(*process, options.prefixes); !s.ok()) return s;
  if (auto s = FillPrefixes(*syscalls, options.prefixes); !s.ok()) return s;

  auto impl = std::make_unique<Impl>(Impl{std::move(*process), std::move(*syscalls), std::move(callback), nullptr, nullptr});
  Impl* raw = impl.get();
  auto deliver = [raw](std::string_view record) {
    if (record.size() >= sizeof(kelpie_detect_event)) {
      kelpie_detect_event e;
      std::memcpy(&e, record.data(), sizeof(e));
      raw->callback(e);
    }
    return true;
  };
  auto pe = RingBufferSource::Create(bpf_map__fd(raw->process->maps.events), deliver);
  if (!pe.ok()) return pe.status();
  auto se = RingBufferSource::Create(bpf_map__fd(raw->syscalls->maps.events), deliver);
  if (!se.ok()) return se.status();
  raw->process_events = std::move(*pe);
  raw->syscall_events = std::move(*se);
  if (auto s = raw->process.AttachAll(); !s.ok()) return s;
  if (auto s = raw->syscalls.AttachAll(); !s.ok()) return s;
  return std::unique_ptr<DetectSensor>(new DetectSensor(std::move(impl)));
}

absl::StatusOr<int> DetectSensor::Poll(std::chrono::milliseconds timeout) {
  // Process events first: a syscall record is attributed through the exec
  // that came before it.
  auto a = impl_->process_events->Poll(std::chrono::milliseconds(0));
  if (!a.ok()) return a.status();
  auto b = impl_->syscall_events->Poll(*a > 0 ? std::chrono::milliseconds(0) : timeout);
  if (!b.ok()) return b.status();
  auto c = impl_->process_events->Poll(std::chrono::milliseconds(0));
  if (!c.ok()) return c.status();
  return *a + *b + *c;
}

absl::StatusOr<DetectCounters> DetectSensor::Counters() const {
  DetectCounters out{};
  if (auto s = AddCounters(impl_->process, out); !s.ok()) return s;
  if (auto s = AddCounters(impl_->syscalls, out); !s.ok()) return s;
  return out;
}

const char* DetectReasonName(int reason) {
  switch (reason) {
    case KELPIE_DETECT_FILTER_KIND: return "kind";
    case KELPIE_DETECT_FILTER_CGROUP: return "cgroup";
    case KELPIE_DETECT_FILTER_PATH: return "path";
    case KELPIE_DETECT_DROP_RINGBUF: return "ringbuf_full";
    default: return "unknown";
  }
}

}  // namespace kelpie::dataplane
