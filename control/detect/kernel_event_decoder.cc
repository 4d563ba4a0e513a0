#include "control/detect/kernel_event_decoder.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace kelpie::detect {
namespace {

std::string_view Bounded(const char* s, size_t cap) { return std::string_view(s, strnlen(s, cap)); }

std::string_view Basename(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

bool KindToEventType(uint32_t kind, EventType* type) {
  switch (kind) {
    case KELPIE_DETECT_EXEC: *type = EventType::kExecve; return true;
    case KELPIE_DETECT_OPEN: *type = EventType::kOpen; return true;
    case KELPIE_DETECT_CONNECT: *type = EventType::kConnect; return true;
    case KELPIE_DETECT_SETUID: *type = EventType::kSetuid; return true;
    case KELPIE_DETECT_SETGID: *type = EventType::kSetgid; return true;
    case KELPIE_DETECT_PTRACE: *type = EventType::kPtrace; return true;
    case KELPIE_DETECT_MOUNT: *type = EventType::kMount; return true;
    case KELPIE_DETECT_UNSHARE: *type = EventType::kUnshare; return true;
    case KELPIE_DETECT_SETNS: *type = EventType::kSetns; return true;
    case KELPIE_DETECT_MEMFD_CREATE: *type = EventType::kMemfdCreate; return true;
    case KELPIE_DETECT_INIT_MODULE: *type = EventType::kInitModule; return true;
    case KELPIE_DETECT_BPF: *type = EventType::kBpf; return true;
    case KELPIE_DETECT_CHMOD: *type = EventType::kChmod; return true;
    default: return false;
  }
}

KernelEventDecoder::KernelEventDecoder(ContainerResolver& resolver, const PodMetadataProvider* pods,
                                       DecoderOptions options)
    : resolver_(resolver), pods_(pods), options_(std::move(options)) {
  options_.ancestor_depth = std::min(options_.ancestor_depth, kMaxAncestors);
}

const KernelEventDecoder::Attribution& KernelEventDecoder::Attribute(uint64_t cgroup_id) {
  auto it = attributions_.find(cgroup_id);
  if (it != attributions_.end()) return *it->second;
  auto a = std::make_unique<Attribution>();
  if (std::optional<CgroupOwner> owner = resolver_.Resolve(cgroup_id)) {
    a->pod_uid = owner->pod_uid;
    a->id = owner->container_id.empty() ? "pod" + owner->pod_uid : owner->container_id;
    if (pods_ != nullptr) {
      if (std::optional<PodMetadata> meta = pods_->Lookup(owner->pod_uid)) {
        a->k8s_namespace = meta->k8s_namespace;
        a->pod_name = meta->name;
        for (const auto& [k, v] : meta->labels) {
          a->label_storage.push_back(k);
          a->label_storage.push_back(v);
        }
        auto c = meta->containers.find(owner->container_id);
        if (c != meta->containers.end()) {
          a->name = c->second.name;
          std::string_view image = c->second.image;
          size_t colon = image.rfind(':');
          size_t slash = image.rfind('/');
          if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
            a->image_repository = std::string(image.substr(0, colon));
            a->image_tag = std::string(image.substr(colon + 1));
          } else {
            a->image_repository = std::string(image);
          }
        }
      }
    }
    // Views into label_storage only after it stops growing.
    for (size_t i = 0; i + 1 < a->label_storage.size(); i += 2) {
      a->labels.push_back(PodLabel{a->label_storage[i], a->label_storage[i + 1]});
    }
  }
  return *attributions_.emplace(cgroup_id, std::move(a)).first->second;
}

void KernelEventDecoder::FillAncestors(uint32_t ppid) {
  ancestor_pids_.clear();
  event_.proc.ancestor_count = 0;
  uint32_t pid = ppid;
  for (size_t depth = 0; depth < options_.ancestor_depth && pid != 0; ++depth) {
    auto it = processes_.find(pid);
    if (it == processes_.end()) break;
    event_.proc.ancestors[depth] = it->second.name;
    ancestor_pids_.push_back(pid);
    event_.proc.ancestor_count = static_cast<uint8_t>(depth + 1);
    if (it->second.ppid == pid) break;
    pid = it->second.ppid;
  }
}

const Event* KernelEventDecoder::Decode(const kelpie_detect_event& r) {
  std::string_view path = Bounded(r.path, sizeof(r.path));
  std::string_view comm = Bounded(r.comm, sizeof(r.comm));

  switch (r.kind) {
    case KELPIE_DETECT_FORK: {
      ProcessRecord child;
      auto parent = processes_.find(r.tgid);
      if (parent != processes_.end()) {
        child = parent->second;
      } else {
        child.exe = std::string(path);
        child.name = std::string(comm);
      }
      child.ppid = r.tgid;
      processes_[static_cast<uint32_t>(r.ret)] = std::move(child);
      return nullptr;
    }
    case KELPIE_DETECT_EXIT:
      processes_.erase(r.tgid);
      return nullptr;
    case KELPIE_DETECT_EXEC: {
      ProcessRecord& p = processes_[r.tgid];
      p.ppid = r.ppid;
      p.exe = std::string(path);
      // The name rules compare is the file's (comm is cut at 15 bytes).
      p.name = std::string(Basename(path));
      break;
    }
    default:
      break;
  }

  EventType type;
  if (!KindToEventType(r.kind, &type)) return nullptr;
  event_ = Event{};
  event_.type = type;
  event_.timestamp_ns = r.timestamp_ns;

  // Process: from the table when this process exec'd under the sensor,
  // otherwise from the record's comm.
  auto self = processes_.find(r.tgid);
  if (self != processes_.end()) {
    exe_ = self->second.exe;
    name_ = self->second.name;
  } else {
    exe_.clear();
    name_ = std::string(comm);
  }
  comm_ = std::string(comm);
  event_.proc.pid = r.tgid;
  event_.proc.ppid = r.ppid;
  event_.proc.uid = r.uid;
  event_.proc.gid = r.gid;
  event_.proc.tty = r.tty;
  event_.proc.name = name_;
  event_.proc.exepath = exe_;

  if (r.kind == KELPIE_DETECT_EXEC) {
    // argv words are NUL separated; argv[0] is skipped for proc.args.
    args_.clear();
    size_t len = std::min<size_t>(r.args_len, sizeof(r.args));
    std::string_view words(r.args, len);
    size_t first_end = words.find('\0');
    if (first_end != std::string_view::npos) {
      for (char c : words.substr(first_end + 1)) args_.push_back(c == '\0' ? ' ' : c);
      while (!args_.empty() && args_.back() == ' ') args_.pop_back();
    }
    cmdline_ = name_;
    if (!args_.empty()) cmdline_ += " " + args_;
    event_.proc.args = args_;
    event_.proc.cmdline = cmdline_;
  } else {
    event_.proc.cmdline = name_;
  }
  FillAncestors(r.ppid);

  path_ = std::string(path);
  switch (r.kind) {
    case KELPIE_DETECT_EXEC:
      event_.fd.name = path_;
      event_.fd.type = "file";
      break;
    case KELPIE_DETECT_OPEN:
      event_.fd.name = path_;
      event_.fd.type = "file";
      event_.arg.flags = r.arg0;
      event_.arg.mode = r.arg1;
      break;
    case KELPIE_DETECT_CHMOD:
      event_.fd.name = path_;
      event_.fd.type = "file";
      event_.arg.mode = r.arg1;
      break;
    case KELPIE_DETECT_CONNECT: {
      char buf[INET_ADDRSTRLEN] = {};
      uint32_t addr = static_cast<uint32_t>(r.arg1);
      inet_ntop(AF_INET, &addr, buf, sizeof(buf));
      dip_ = buf;
      sockname_ = dip_ + ":" + std::to_string(r.arg0);
      event_.fd.name = sockname_;
      event_.fd.type = "ipv4";
      event_.fd.l4proto = "tcp";
      event_.fd.dip = dip_;
      event_.fd.dport = r.arg0;
      break;
    }
    case KELPIE_DETECT_SETUID: event_.arg.uid = r.arg0; break;
    case KELPIE_DETECT_SETGID: event_.arg.gid = r.arg0; break;
    case KELPIE_DETECT_PTRACE: event_.arg.request = r.arg0; break;
    case KELPIE_DETECT_MOUNT:
      target_ = path_;
      source_ = std::string(Bounded(r.args, 128));
      fstype_ = std::string(Bounded(r.args + 128, 64));
      event_.arg.target = target_;
      event_.arg.source = source_;
      event_.arg.fstype = fstype_;
      event_.arg.flags = r.arg0;
      break;
    case KELPIE_DETECT_UNSHARE:
    case KELPIE_DETECT_SETNS: event_.arg.flags = r.arg0; break;
    case KELPIE_DETECT_MEMFD_CREATE:
      event_.arg.name = path_;
      event_.arg.flags = r.arg0;
      break;
    case KELPIE_DETECT_BPF: event_.arg.cmd = r.arg0; break;
    default: break;
  }

  const Attribution& a = Attribute(r.cgroup_id);
  event_.container.id = a.id;
  event_.container.name = a.name;
  event_.container.image_repository = a.image_repository;
  event_.container.image_tag = a.image_tag;
  event_.container.k8s_namespace = a.k8s_namespace;
  event_.container.k8s_pod_name = a.pod_name;
  event_.container.k8s_pod_uid = a.pod_uid;
  event_.container.k8s_pod_labels = a.labels;
  return &event_;
}

}  // namespace kelpie::detect
