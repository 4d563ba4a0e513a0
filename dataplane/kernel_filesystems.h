// The kernel file systems the dataplane needs: bpffs (pinned maps survive
// agent restarts), tracefs (tracepoint attachment) and the cgroup v2
// hierarchy (cgroup programs and pod identity).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace kelpie::dataplane {

bool IsBpffs(const std::string& path);
bool IsTracefs(const std::string& path);

// Mounts a bpffs at `path` (creating the folder) unless one is there.
absl::Status EnsureBpffs(const std::string& path);
// Mounts tracefs at /sys/kernel/tracing unless it is mounted.
absl::Status EnsureTracefs();

// Mounts a file system of `fstype` on a fresh temporary folder and unmounts
// it again: proves the kernel has it and we may mount it.
absl::Status ProbeMount(const std::string& fstype);

enum class CgroupLayout { kUnified, kHybrid, kNone };

struct CgroupV2Root {
  CgroupLayout layout = CgroupLayout::kNone;
  std::string path;  // /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid)
};

// Pure v2 at /sys/fs/cgroup, or the hybrid layout with v2 at
// /sys/fs/cgroup/unified; kNone when neither holds a cgroup2 mount.
CgroupV2Root DetectCgroupV2Root(const std::string& cgroup_mount = "/sys/fs/cgroup");

}  // namespace kelpie::dataplane
