// Loads bpf/sock_lb.bpf.c, pins its maps and links under one bpffs folder
// per node (<bpffs>/kelpie/<node>/) and attaches the cgroup sock_addr
// programs to a cgroup v2 folder.
//
// Restart semantics: everything is pinned, so routing keeps working while
// no agent runs. A new SocketLbProgram on the same folder reuses the pinned
// maps (libbpf pin-path reuse) and swaps its freshly loaded programs into the
// pinned links atomically (BPF_LINK_UPDATE): there is no moment without a
// program or with empty maps. Only Uninstall() removes links and maps.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "dataplane/bpf_skeleton.h"
#include "dataplane/service_maps.h"

struct sock_lb;
struct bpf_link;
struct bpf_program;

namespace kelpie::dataplane {

struct SocketLbOptions {
  // Folder on a bpffs for this node's pins, e.g. /sys/fs/bpf/kelpie/<node>.
  std::string pin_dir;
  // cgroup v2 folder whose processes (and descendants) get service routing:
  // the host's v2 root serves node processes and pods alike.
  std::string cgroup_path;
  LbMapCapacity capacity{.services = KELPIE_LB_DEFAULT_MAX_SERVICES,
                         .backends = KELPIE_LB_DEFAULT_MAX_BACKENDS,
                         .slots = KELPIE_LB_DEFAULT_MAX_SLOTS,
                         .revnat = KELPIE_LB_DEFAULT_MAX_REVNAT,
                         .affinity = KELPIE_LB_DEFAULT_MAX_AFFINITY};
  // Fail connects to services without backends with ECONNREFUSED (else the
  // kernel's EPERM for a rejecting hook).
  bool refuse_with_econnrefused = true;
};

class SocketLbProgram {
 public:
  static absl::StatusOr<std::unique_ptr<SocketLbProgram>> Install(const SocketLbOptions& options);
  ~SocketLbProgram();
  SocketLbProgram(const SocketLbProgram&) = delete;
  SocketLbProgram& operator=(const SocketLbProgram&) = delete;

  ServiceMaps& maps() { return *maps_; }
  // True when the maps were found pinned (a restart), false when created.
  bool reused_pins() const { return reused_pins_; }
  const SocketLbOptions& options() const { return options_; }

  // Detaches the programs and removes every pin and the pin folder: service
  // routing stops. The object is unusable afterwards.
  absl::Status Uninstall();

 private:
  explicit SocketLbProgram(SocketLbOptions options);
  absl::Status Load();
  absl::Status AttachOrUpdate(struct bpf_program* prog, const std::string& name, int cgroup_fd);
  void Close();

  SocketLbOptions options_;
  std::optional<BpfSkeleton<struct sock_lb>> skel_;
  std::vector<std::pair<std::string, struct bpf_link*>> links_;  // pin path, link
  std::unique_ptr<ServiceMaps> maps_;
  bool reused_pins_ = false;
};

// Removes a node's pins (links first, so programs detach) without loading
// anything: cleanup after tests or when service routing is turned off.
absl::Status RemoveSocketLbPins(const std::string& pin_dir);

}  // namespace kelpie::dataplane
