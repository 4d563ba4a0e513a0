// One cgroup directory per pod under a configurable parent, containers below
// it. The cgroup v2 directory is the pod's identity for the eBPF dataplane
// (its inode is the cgroup id); resource limits are applied per container by
// runc through linux.resources, on whichever hierarchy holds the controllers:
//   pure v2 (/sys/fs/cgroup is cgroup2): every controller is in v2;
//   hybrid (v2 at /sys/fs/cgroup/unified, controllers on v1 mounts): runc
//   creates the same relative path in every v1 hierarchy and in v2.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kelpie::runtime {

struct CgroupHierarchy {
  std::string v2_root;                // cgroup2 mount point
  bool v2_has_memory = false;          // memory controller available in v2
  std::vector<std::string> v1_mounts;  // every cgroup v1 mount point (hybrid)
  std::string v1_memory_mount;         // v1 memory hierarchy ("" when none)
};

// Reads the mount table (/proc/self/mountinfo format). A cgroup2 mount at
// /sys/fs/cgroup wins over one elsewhere (pure v2 before hybrid).
absl::StatusOr<CgroupHierarchy> CgroupHierarchyFromMountinfo(const std::string& mountinfo);
absl::StatusOr<CgroupHierarchy> DetectCgroupHierarchy();

struct PodCgroup {
  std::string relative_path;  // "/kelpie.slice/pod<uid>", what runc's cgroupsPath extends
  std::string path;           // absolute cgroup v2 directory
  uint64_t id = 0;            // inode of `path` = the kernel's cgroup id
};

class PodCgroups {
 public:
  // `parent` is relative to the hierarchy roots, e.g. "/kelpie.slice".
  PodCgroups(CgroupHierarchy hierarchy, std::string parent);

  const CgroupHierarchy& hierarchy() const { return hierarchy_; }
  const std::string& parent() const { return parent_; }

  std::string PodRelativePath(const std::string& pod_uid) const;
  std::string ContainerRelativePath(const std::string& pod_uid, const std::string& container_id) const;

  // Creates (or finds) the pod's v2 directory and enables the controllers v2
  // offers for its children.
  absl::StatusOr<PodCgroup> CreatePod(const std::string& pod_uid);
  // Removes the pod's directories (and any leftover children) from v2 and
  // every v1 hierarchy. Fails when a process is still inside.
  absl::Status RemovePod(const std::string& pod_uid);
  // Removes the parent directories when empty (tests use a private parent).
  absl::Status RemoveParentIfEmpty();

  // The file whose "oom_kill N" line counts OOM kills in a container's cgroup:
  // memory.events in v2, memory.oom_control in a v1 memory hierarchy.
  std::string OomCounterFile(const std::string& container_relative_path) const;

 private:
  std::vector<std::string> AllRoots() const;

  CgroupHierarchy hierarchy_;
  std::string parent_;
};

// Parses the "oom_kill N" line of memory.events / memory.oom_control; 0 when
// the file is gone or has no such line.
uint64_t ReadOomKillCount(const std::string& file);

// Removes a cgroup directory tree bottom-up (cgroup files cannot be
// unlinked; only empty directories can be removed). Missing is success.
absl::Status RemoveCgroupTree(const std::string& path);

}  // namespace kelpie::runtime
