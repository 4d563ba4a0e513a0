#include "dataplane/nodeport_program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/log.h"
#include "dataplane/kernel_filesystems.h"
#include "dataplane/libbpf_errors.h"
#include "nodeport.skel.h"

namespace kelpie::dataplane {
namespace {

constexpr const char* kMapNames[] = {"np_frontends", "np_backends", "np_conntrack", "np_reasons"};
// tc filter identity: replaced in place on restart, removed by Uninstall.
constexpr uint32_t kFilterHandle = 0x4b4e;  // "KN"
constexpr uint32_t kFilterPriority = 0x4b4e;

absl::Status ErrnoError(absl::string_view what, int err) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(what, ": ", std::strerror(err)));
}

uint64_t MonotonicNs() {
  struct timespec ts = {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t TimeoutFor(const kelpie_np_ct_key& key, const kelpie_np_ct_value& value, const ConntrackTimeouts& t) {
  if (key.protocol != IPPROTO_TCP) return t.udp_ns;
  switch (value.state) {
    case KELPIE_NP_CT_NEW:
      return t.tcp_new_ns;
    case KELPIE_NP_CT_CLOSING:
      return t.tcp_closing_ns;
    default:
      return t.tcp_established_ns;
  }
}

// The key of the other direction's entry, derived from this entry's value.
kelpie_np_ct_key PeerKey(const kelpie_np_ct_key& key, const kelpie_np_ct_value& value) {
  kelpie_np_ct_key peer = {};
  peer.saddr = value.nat_daddr;
  peer.daddr = value.nat_saddr;
  peer.sport = value.nat_dport;
  peer.dport = value.nat_sport;
  peer.protocol = key.protocol;
  return peer;
}

}  // namespace

NodePortProgram::NodePortProgram(NodePortOptions options) : options_(std::move(options)) {}

NodePortProgram::~NodePortProgram() = default;

absl::StatusOr<std::unique_ptr<NodePortProgram>> NodePortProgram::Install(const NodePortOptions& options) {
  std::unique_ptr<NodePortProgram> p(new NodePortProgram(options));
  if (absl::Status s = p->Load(); !s.ok()) {
    // Leave nothing half attached behind.
    (void)p->Uninstall();
    return s;
  }
  return p;
}

absl::Status NodePortProgram::Load() {
  if (absl::Status s = MakeDirectories(options_.pin_dir, 0700); !s.ok()) return s;
  if (!IsBpffs(options_.pin_dir)) {
    return absl::FailedPreconditionError(absl::StrCat(options_.pin_dir, " is not on a bpffs"));
  }
  if (options_.max_frontends == 0 || options_.max_backends == 0 || options_.max_conntrack == 0) {
    return absl::InvalidArgumentError("NodePort map sizes must be positive");
  }
  auto opened = BpfSkeleton<struct nodeport>::Open(KELPIE_SKELETON_OPS(nodeport));
  if (!opened.ok()) return opened.status();
  skel_.emplace(std::move(*opened));
  nodeport* skel = skel_->get();
  struct {
    struct bpf_map* map;
    uint32_t max;
  } sized[] = {{skel->maps.np_frontends, options_.max_frontends},
               {skel->maps.np_backends, options_.max_backends},
               {skel->maps.np_conntrack, options_.max_conntrack}};
  for (auto& m : sized) {
    if (int err = bpf_map__set_max_entries(m.map, m.max); err != 0) return LibbpfError("sizing map", err);
  }
  for (const char* name : kMapNames) {
    struct bpf_map* map = bpf_object__find_map_by_name(skel->obj, name);
    std::string path = absl::StrCat(options_.pin_dir, "/", name);
    if (PathExists(path)) reused_pins_ = true;
    if (int err = bpf_map__set_pin_path(map, path.c_str()); err != 0) return LibbpfError("setting pin path", err);
  }
  if (absl::Status s = skel_->Load(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(s.message(), " (maps pinned under ", options_.pin_dir,
                                               " are reused only when their sizes match)"));
  }
  for (const std::string& interface : options_.interfaces) {
    if (absl::Status s = AttachTo(interface); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status NodePortProgram::Attach(const std::string& interface) {
  if (!skel_) return absl::FailedPreconditionError("the NodePort program is not loaded");
  return AttachTo(interface);
}

bool NodePortProgram::IsAttached(const std::string& interface) const {
  int ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
  if (ifindex == 0) return false;
  for (const Attachment& a : attachments_) {
    if (a.ifindex == ifindex) return true;
  }
  return false;
}

absl::Status NodePortProgram::AttachTo(const std::string& interface) {
  int ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
  if (ifindex == 0) return ErrnoError(absl::StrCat("NodePort interface ", interface), errno);
  for (const Attachment& a : attachments_) {
    if (a.ifindex == ifindex) return absl::OkStatus();
  }
  ClearLibbpfMessages();
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  int err = bpf_tc_hook_create(&hook);
  if (err != 0 && err != -EEXIST) return LibbpfError(absl::StrCat("creating clsact qdisc on ", interface), err);
  bool created_qdisc = err == 0;
  DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = bpf_program__fd(skel_->get()->progs.kelpie_nodeport_ingress),
                      .flags = BPF_TC_F_REPLACE, .handle = kFilterHandle, .priority = kFilterPriority);
  if (int e = bpf_tc_attach(&hook, &opts); e != 0) {
    if (created_qdisc) {
      hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
      (void)bpf_tc_hook_destroy(&hook);
    }
    return LibbpfError(absl::StrCat("attaching the NodePort program to ", interface), e);
  }
  attachments_.push_back({.ifindex = ifindex, .created_qdisc = created_qdisc});
  return absl::OkStatus();
}

absl::Status NodePortProgram::UpsertFrontend(const kelpie_np_frontend_key& key, const kelpie_np_frontend_value& value) {
  if (bpf_map_update_elem(bpf_map__fd(skel_->get()->maps.np_frontends), &key, &value, BPF_ANY) != 0) {
    return ErrnoError("updating NodePort frontend", errno);
  }
  return absl::OkStatus();
}

absl::Status NodePortProgram::DeleteFrontend(const kelpie_np_frontend_key& key) {
  if (bpf_map_delete_elem(bpf_map__fd(skel_->get()->maps.np_frontends), &key) != 0 && errno != ENOENT) {
    return ErrnoError("deleting NodePort frontend", errno);
  }
  return absl::OkStatus();
}

absl::Status NodePortProgram::UpsertBackend(uint32_t service_id, uint32_t index, const kelpie_np_backend& backend) {
  kelpie_np_backend_key key = {.service_id = service_id, .index = index};
  if (bpf_map_update_elem(bpf_map__fd(skel_->get()->maps.np_backends), &key, &backend, BPF_ANY) != 0) {
    return ErrnoError("updating NodePort backend", errno);
  }
  return absl::OkStatus();
}

absl::Status NodePortProgram::DeleteBackend(uint32_t service_id, uint32_t index) {
  kelpie_np_backend_key key = {.service_id = service_id, .index = index};
  if (bpf_map_delete_elem(bpf_map__fd(skel_->get()->maps.np_backends), &key) != 0 && errno != ENOENT) {
    return ErrnoError("deleting NodePort backend", errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<NodePortSnapshot> NodePortProgram::Snapshot() const {
  NodePortSnapshot snapshot;
  int fd = bpf_map__fd(skel_->get()->maps.np_frontends);
  kelpie_np_frontend_key fkey = {};
  kelpie_np_frontend_key fnext = {};
  const void* prev = nullptr;
  for (uint32_t i = 0; i < options_.max_frontends && bpf_map_get_next_key(fd, prev, &fnext) == 0; ++i) {
    kelpie_np_frontend_value value = {};
    if (bpf_map_lookup_elem(fd, &fnext, &value) == 0) snapshot.frontends.emplace_back(fnext, value);
    fkey = fnext;
    prev = &fkey;
  }
  fd = bpf_map__fd(skel_->get()->maps.np_backends);
  kelpie_np_backend_key bkey = {};
  kelpie_np_backend_key bnext = {};
  prev = nullptr;
  for (uint32_t i = 0; i < options_.max_backends && bpf_map_get_next_key(fd, prev, &bnext) == 0; ++i) {
    kelpie_np_backend value = {};
    if (bpf_map_lookup_elem(fd, &bnext, &value) == 0) snapshot.backends.emplace_back(bnext, value);
    bkey = bnext;
    prev = &bkey;
  }
  return snapshot;
}

absl::StatusOr<size_t> NodePortProgram::ConntrackEntryCount() const {
  int fd = bpf_map__fd(skel_->get()->maps.np_conntrack);
  kelpie_np_ct_key key = {};
  kelpie_np_ct_key next = {};
  const void* prev = nullptr;
  size_t n = 0;
  while (n < options_.max_conntrack && bpf_map_get_next_key(fd, prev, &next) == 0) {
    ++n;
    key = next;
    prev = &key;
  }
  return n;
}

absl::StatusOr<std::vector<NodePortEntry>> NodePortProgram::ConntrackEntries() const {
  int fd = bpf_map__fd(skel_->get()->maps.np_conntrack);
  std::vector<NodePortEntry> entries;
  kelpie_np_ct_key key = {};
  kelpie_np_ct_key next = {};
  const void* prev = nullptr;
  // Bounded by the map size: an LRU map changing under the walk can make
  // get_next_key restart from the beginning.
  for (uint32_t i = 0; i < options_.max_conntrack && bpf_map_get_next_key(fd, prev, &next) == 0; ++i) {
    NodePortEntry e = {.key = next, .value = {}};
    if (bpf_map_lookup_elem(fd, &next, &e.value) == 0) entries.push_back(e);
    key = next;
    prev = &key;
  }
  return entries;
}

absl::StatusOr<size_t> NodePortProgram::CollectGarbage(const ConntrackTimeouts& timeouts) {
  auto entries = ConntrackEntries();
  if (!entries.ok()) return entries.status();
  int fd = bpf_map__fd(skel_->get()->maps.np_conntrack);
  uint64_t now = MonotonicNs();
  size_t removed = 0;
  for (const NodePortEntry& e : *entries) {
    uint64_t age = now > e.value.last_seen_ns ? now - e.value.last_seen_ns : 0;
    if (age <= TimeoutFor(e.key, e.value, timeouts)) continue;
    // A flow is as alive as its most recently used direction.
    kelpie_np_ct_key peer = PeerKey(e.key, e.value);
    kelpie_np_ct_value peer_value = {};
    if (bpf_map_lookup_elem(fd, &peer, &peer_value) == 0) {
      uint64_t peer_age = now > peer_value.last_seen_ns ? now - peer_value.last_seen_ns : 0;
      if (peer_age <= TimeoutFor(peer, peer_value, timeouts)) continue;
      if (bpf_map_delete_elem(fd, &peer) == 0) ++removed;
    }
    if (bpf_map_delete_elem(fd, &e.key) == 0) ++removed;
  }
  return removed;
}

absl::StatusOr<std::vector<uint64_t>> NodePortProgram::ReasonCounts() const {
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return LibbpfError("counting CPUs", ncpus);
  int fd = bpf_map__fd(skel_->get()->maps.np_reasons);
  std::vector<uint64_t> totals(KELPIE_NP_REASON_MAX, 0);
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpus));
  for (uint32_t r = 0; r < KELPIE_NP_REASON_MAX; ++r) {
    if (bpf_map_lookup_elem(fd, &r, per_cpu.data()) != 0) return ErrnoError("reading NodePort counters", errno);
    for (uint64_t v : per_cpu) totals[r] += v;
  }
  return totals;
}

absl::Status NodePortProgram::Uninstall() {
  absl::Status first;
  for (const Attachment& a : attachments_) {
    DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = a.ifindex, .attach_point = BPF_TC_INGRESS);
    DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kFilterHandle, .priority = kFilterPriority);
    int err = bpf_tc_detach(&hook, &opts);
    if (err != 0 && err != -ENOENT && first.ok()) first = LibbpfError("detaching the NodePort program", err);
    if (a.created_qdisc) {
      // Removes the clsact qdisc (both directions) only when we made it.
      hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
      err = bpf_tc_hook_destroy(&hook);
      if (err != 0 && err != -ENOENT && first.ok()) first = LibbpfError("removing the clsact qdisc", err);
    }
  }
  attachments_.clear();
  skel_.reset();
  absl::Status pins = RemoveNodePortPins(options_.pin_dir);
  return first.ok() ? pins : first;
}

absl::Status RemoveNodePortPins(const std::string& pin_dir) {
  absl::Status first;
  for (const char* name : kMapNames) {
    std::string path = absl::StrCat(pin_dir, "/", name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT && first.ok()) first = ErrnoError("unpinning " + path, errno);
  }
  // The folder is shared with the socket balancer's pins: remove it only
  // when it is empty.
  if (::rmdir(pin_dir.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && first.ok()) {
    first = ErrnoError("removing " + pin_dir, errno);
  }
  return first;
}

}  // namespace kelpie::dataplane
