#include "control/detect/container_resolver.h"

#include <sys/stat.h>

#include <filesystem>
#include <system_error>

namespace kelpie::detect {

absl::Status CgroupDirectoryResolver::Rescan() {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::map<uint64_t, CgroupOwner> found;
  for (const fs::directory_entry& pod : fs::directory_iterator(root_, ec)) {
    std::string pod_dir = pod.path().filename().string();
    if (!pod.is_directory(ec) || pod_dir.rfind("pod", 0) != 0) continue;
    std::string uid = pod_dir.substr(3);
    struct stat st{};
    // Processes directly in the pod cgroup (the pause/sandbox) belong to
    // the pod but to no container.
    if (::stat(pod.path().c_str(), &st) == 0) found[st.st_ino] = CgroupOwner{uid, ""};
    for (const fs::directory_entry& c : fs::directory_iterator(pod.path(), ec)) {
      if (!c.is_directory(ec)) continue;
      if (::stat(c.path().c_str(), &st) == 0) found[st.st_ino] = CgroupOwner{uid, c.path().filename().string()};
    }
  }
  if (ec && found.empty() && ec != std::errc::no_such_file_or_directory) {
    return absl::UnavailableError("reading cgroup root " + root_ + ": " + ec.message());
  }
  owners_ = std::move(found);
  unknown_.clear();
  return absl::OkStatus();
}

std::optional<CgroupOwner> CgroupDirectoryResolver::Resolve(uint64_t cgroup_id) {
  auto it = owners_.find(cgroup_id);
  if (it != owners_.end()) return it->second;
  if (unknown_.count(cgroup_id)) return std::nullopt;
  (void)Rescan();
  it = owners_.find(cgroup_id);
  if (it != owners_.end()) return it->second;
  unknown_[cgroup_id] = true;
  return std::nullopt;
}

}  // namespace kelpie::detect
