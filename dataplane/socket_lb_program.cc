#include "dataplane/socket_lb_program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/log.h"
#include "dataplane/kernel_filesystems.h"
#include "dataplane/libbpf_errors.h"
#include "sock_lb.skel.h"

namespace kelpie::dataplane {
namespace {

constexpr const char* kMapNames[] = {"lb_services", "lb_slots",         "lb_backends", "lb_revnat",
                                     "lb_affinity", "lb_service_stats", "lb_reasons"};
constexpr const char* kLinkNames[] = {"link_connect4", "link_sendmsg4", "link_recvmsg4", "link_getpeername4",
                                      "link_connect6", "link_sendmsg6", "link_recvmsg6", "link_getpeername6",
                                      "link_sock_release"};

absl::Status ErrnoError(absl::string_view what) {
  int e = errno;
  return absl::Status(absl::ErrnoToStatusCode(e), absl::StrCat(what, ": ", std::strerror(e)));
}

}  // namespace

SocketLbProgram::SocketLbProgram(SocketLbOptions options) : options_(std::move(options)) {}

SocketLbProgram::~SocketLbProgram() { Close(); }

void SocketLbProgram::Close() {
  // Pinned links and maps stay in the kernel: closing our descriptors does
  // not detach anything.
  for (auto& [path, link] : links_) bpf_link__destroy(link);
  links_.clear();
  skel_.reset();
  maps_.reset();
}

absl::StatusOr<std::unique_ptr<SocketLbProgram>> SocketLbProgram::Install(const SocketLbOptions& options) {
  std::unique_ptr<SocketLbProgram> p(new SocketLbProgram(options));
  if (absl::Status s = p->Load(); !s.ok()) return s;
  return p;
}

absl::Status SocketLbProgram::Load() {
  if (absl::Status s = MakeDirectories(options_.pin_dir, 0700); !s.ok()) return s;
  if (!IsBpffs(options_.pin_dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat(options_.pin_dir, " is not on a bpffs (mount one, e.g. EnsureBpffs(\"/sys/fs/bpf\"))"));
  }
  auto opened = BpfSkeleton<struct sock_lb>::Open(KELPIE_SKELETON_OPS(sock_lb));
  if (!opened.ok()) return opened.status();
  skel_.emplace(std::move(*opened));
  sock_lb* skel = skel_->get();
  skel->rodata->refuse_errno = options_.refuse_with_econnrefused ? 111 : 0;

  const LbMapCapacity& c = options_.capacity;
  struct {
    struct bpf_map* map;
    uint32_t max;
  } sized[] = {{skel->maps.lb_services, c.services},  {skel->maps.lb_slots, c.slots},
               {skel->maps.lb_backends, c.backends},  {skel->maps.lb_revnat, c.revnat},
               {skel->maps.lb_affinity, c.affinity},  {skel->maps.lb_service_stats, c.services}};
  for (auto& m : sized) {
    if (m.max == 0) return absl::InvalidArgumentError("map sizes must be positive");
    if (int err = bpf_map__set_max_entries(m.map, m.max); err != 0) return LibbpfError("sizing map", err);
  }
  bool any_pinned = false;
  for (const char* name : kMapNames) {
    struct bpf_map* map = bpf_object__find_map_by_name(skel->obj, name);
    std::string path = absl::StrCat(options_.pin_dir, "/", name);
    if (PathExists(path)) any_pinned = true;
    // Reuses the pinned map when present and compatible, else creates and
    // pins it at load.
    if (int err = bpf_map__set_pin_path(map, path.c_str()); err != 0) return LibbpfError("setting pin path", err);
  }
  reused_pins_ = any_pinned;
  if (absl::Status s = skel_->Load(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(s.message(), " (maps already pinned under ", options_.pin_dir,
                                               " are reused only when their sizes match the configuration)"));
  }

  int cgroup_fd = ::open(options_.cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgroup_fd < 0) return ErrnoError(absl::StrCat("opening cgroup ", options_.cgroup_path));
  struct bpf_program* progs[] = {skel->progs.kelpie_connect4,     skel->progs.kelpie_sendmsg4,
                                 skel->progs.kelpie_recvmsg4,     skel->progs.kelpie_getpeername4,
                                 skel->progs.kelpie_connect6,     skel->progs.kelpie_sendmsg6,
                                 skel->progs.kelpie_recvmsg6,     skel->progs.kelpie_getpeername6,
                                 skel->progs.kelpie_sock_release};
  static_assert(sizeof(progs) / sizeof(progs[0]) == sizeof(kLinkNames) / sizeof(kLinkNames[0]));
  absl::Status s;
  for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]) && s.ok(); ++i) {
    s = AttachOrUpdate(progs[i], kLinkNames[i], cgroup_fd);
  }
  ::close(cgroup_fd);
  if (!s.ok()) return s;

  maps_ = std::make_unique<ServiceMaps>(
      ServiceMaps::Fds{.services = bpf_map__fd(skel->maps.lb_services),
                       .slots = bpf_map__fd(skel->maps.lb_slots),
                       .backends = bpf_map__fd(skel->maps.lb_backends),
                       .revnat = bpf_map__fd(skel->maps.lb_revnat),
                       .affinity = bpf_map__fd(skel->maps.lb_affinity),
                       .service_stats = bpf_map__fd(skel->maps.lb_service_stats),
                       .reasons = bpf_map__fd(skel->maps.lb_reasons)},
      c);
  return absl::OkStatus();
}

absl::Status SocketLbProgram::AttachOrUpdate(struct bpf_program* prog, const std::string& name, int cgroup_fd) {
  std::string path = absl::StrCat(options_.pin_dir, "/", name);
  ClearLibbpfMessages();
  if (PathExists(path)) {
    struct bpf_link* link = bpf_link__open(path.c_str());
    if (link == nullptr) return LibbpfError(absl::StrCat("opening pinned link ", path), -errno);
    // The pinned link must hold the cgroup we were asked for.
    struct bpf_link_info info = {};
    uint32_t len = sizeof(info);
    struct stat st = {};
    if (bpf_obj_get_info_by_fd(bpf_link__fd(link), &info, &len) == 0 && ::fstat(cgroup_fd, &st) == 0 &&
        info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id != 0 &&
        info.cgroup.cgroup_id != static_cast<uint64_t>(st.st_ino)) {
      bpf_link__destroy(link);
      return absl::FailedPreconditionError(absl::StrCat(
          "pinned link ", path, " is attached to another cgroup than ", options_.cgroup_path,
          "; remove the node's pins first"));
    }
    // Atomic swap: the hook never runs without a program.
    if (int err = bpf_link__update_program(link, prog); err != 0) {
      bpf_link__destroy(link);
      return LibbpfError(absl::StrCat("updating pinned link ", path), err);
    }
    links_.emplace_back(path, link);
    return absl::OkStatus();
  }
  struct bpf_link* link = bpf_program__attach_cgroup(prog, cgroup_fd);
  if (link == nullptr) {
    return LibbpfError(absl::StrCat("attaching ", bpf_program__name(prog), " to ", options_.cgroup_path), -errno);
  }
  if (int err = bpf_link__pin(link, path.c_str()); err != 0) {
    bpf_link__destroy(link);
    return LibbpfError(absl::StrCat("pinning link ", path), err);
  }
  links_.emplace_back(path, link);
  return absl::OkStatus();
}

absl::Status SocketLbProgram::Uninstall() {
  for (auto& [path, link] : links_) bpf_link__unpin(link);
  std::string dir = options_.pin_dir;
  Close();
  return RemoveSocketLbPins(dir);
}

absl::Status RemoveSocketLbPins(const std::string& pin_dir) {
  absl::Status first;
  // Links first: unpinning the last reference detaches the program.
  for (const char* name : kLinkNames) {
    std::string path = absl::StrCat(pin_dir, "/", name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT && first.ok()) first = ErrnoError("unpinning " + path);
  }
  for (const char* name : kMapNames) {
    std::string path = absl::StrCat(pin_dir, "/", name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT && first.ok()) first = ErrnoError("unpinning " + path);
  }
  if (::rmdir(pin_dir.c_str()) != 0 && errno != ENOENT && first.ok()) first = ErrnoError("removing " + pin_dir);
  return first;
}

}  // namespace kelpie::dataplane
