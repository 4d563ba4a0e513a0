#include "orchestrator/runtime/cgroup/pod_cgroups.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"

namespace kelpie::runtime {
namespace {

std::string Unescape(const std::string& field) {
  // mountinfo escapes space, tab, newline and backslash as \ooo.
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int v = 0;
      bool ok = true;
      for (size_t j = 1; j <= 3; ++j) {
        char c = field[i + j];
        if (c < '0' || c > '7') ok = false;
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

std::string NormalizeParent(std::string parent) {
  while (!parent.empty() && parent.back() == '/') parent.pop_back();
  if (parent.empty() || parent[0] != '/') parent = "/" + parent;
  return parent;
}

}  // namespace

absl::StatusOr<CgroupHierarchy> CgroupHierarchyFromMountinfo(const std::string& mountinfo) {
  CgroupHierarchy h;
  std::string other_v2;
  for (absl::string_view line : absl::StrSplit(mountinfo, '\n', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ');
    size_t dash = 0;
    for (size_t i = 6; i < fields.size(); ++i) {
      if (fields[i] == "-") {
        dash = i;
        break;
      }
    }
    if (dash == 0 || dash + 3 >= fields.size()) continue;
    const std::string mount_point = Unescape(fields[4]);
    const std::string& fstype = fields[dash + 1];
    const std::string& super_opts = fields[dash + 3];
    if (fstype == "cgroup2") {
      if (mount_point == "/sys/fs/cgroup") {
        h.v2_root = mount_point;
      } else if (other_v2.empty()) {
        other_v2 = mount_point;
      }
    } else if (fstype == "cgroup") {
      h.v1_mounts.push_back(mount_point);
      for (absl::string_view opt : absl::StrSplit(super_opts, ',')) {
        if (opt == "memory") h.v1_memory_mount = mount_point;
      }
    }
  }
  if (h.v2_root.empty()) h.v2_root = other_v2;
  if (h.v2_root.empty()) {
    return absl::FailedPreconditionError(
        "no cgroup2 file system is mounted (neither pure v2 at /sys/fs/cgroup nor the hybrid "
        "layout's /sys/fs/cgroup/unified)");
  }
  return h;
}

absl::StatusOr<CgroupHierarchy> DetectCgroupHierarchy() {
  auto text = ReadFileToString("/proc/self/mountinfo");
  if (!text.ok()) return text.status();
  auto h = CgroupHierarchyFromMountinfo(*text);
  if (!h.ok()) return h.status();
  auto controllers = ReadFileToString(h->v2_root + "/cgroup.controllers");
  if (controllers.ok()) {
    for (absl::string_view c : absl::StrSplit(*controllers, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
      if (c == "memory") h->v2_has_memory = true;
    }
  }
  return h;
}

PodCgroups::PodCgroups(CgroupHierarchy hierarchy, std::string parent)
    : hierarchy_(std::move(hierarchy)), parent_(NormalizeParent(std::move(parent))) {}

std::string PodCgroups::PodRelativePath(const std::string& pod_uid) const {
  return absl::StrCat(parent_ == "/" ? "" : parent_, "/pod", pod_uid);
}

std::string PodCgroups::ContainerRelativePath(const std::string& pod_uid,
                                              const std::string& container_id) const {
  return absl::StrCat(PodRelativePath(pod_uid), "/", container_id);
}

absl::StatusOr<PodCgroup> PodCgroups::CreatePod(const std::string& pod_uid) {
  if (pod_uid.empty() || pod_uid.find('/') != std::string::npos || pod_uid == "..") {
    return absl::InvalidArgumentError(absl::StrCat("bad pod uid for a cgroup name: '", pod_uid, "'"));
  }
  PodCgroup pod;
  pod.relative_path = PodRelativePath(pod_uid);
  pod.path = hierarchy_.v2_root + pod.relative_path;
  // Enable every controller v2 offers down the path, so containers below the
  // pod can be limited on pure v2 (no-op for controllers bound to v1).
  std::string dir = hierarchy_.v2_root;
  std::vector<std::string> parts = absl::StrSplit(pod.relative_path, '/', absl::SkipEmpty());
  for (const std::string& part : parts) {
    auto controllers = ReadFileToString(dir + "/cgroup.controllers");
    if (controllers.ok()) {
      for (absl::string_view c : absl::StrSplit(*controllers, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
        std::ofstream subtree(dir + "/cgroup.subtree_control");
        subtree << "+" << c;  // best effort: a busy controller stays as it was
      }
    }
    dir += "/" + part;
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", std::strerror(errno)));
    }
  }
  struct stat st;
  if (::stat(pod.path.c_str(), &st) != 0) {
    return absl::InternalError(absl::StrCat("stat ", pod.path, ": ", std::strerror(errno)));
  }
  pod.id = st.st_ino;
  return pod;
}

std::vector<std::string> PodCgroups::AllRoots() const {
  std::vector<std::string> roots = {hierarchy_.v2_root};
  roots.insert(roots.end(), hierarchy_.v1_mounts.begin(), hierarchy_.v1_mounts.end());
  return roots;
}

absl::Status PodCgroups::RemovePod(const std::string& pod_uid) {
  if (pod_uid.empty()) return absl::InvalidArgumentError("empty pod uid");
  absl::Status first;
  for (const std::string& root : AllRoots()) {
    absl::Status s = RemoveCgroupTree(root + PodRelativePath(pod_uid));
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

absl::Status PodCgroups::RemoveParentIfEmpty() {
  if (parent_ == "/") return absl::OkStatus();
  for (const std::string& root : AllRoots()) {
    std::string dir = root + parent_;
    // Remove the parent and then each ancestor below the root while empty.
    while (dir.size() > root.size()) {
      if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) break;
      dir = dir.substr(0, dir.rfind('/'));
    }
  }
  return absl::OkStatus();
}

std::string PodCgroups::OomCounterFile(const std::string& container_relative_path) const {
  if (hierarchy_.v2_has_memory || hierarchy_.v1_memory_mount.empty()) {
    return hierarchy_.v2_root + container_relative_path + "/memory.events";
  }
  return hierarchy_.v1_memory_mount + container_relative_path + "/memory.oom_control";
}

uint64_t ReadOomKillCount(const std::string& file) {
  auto text = ReadFileToString(file);
  if (!text.ok()) return 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (absl::ConsumePrefix(&line, "oom_kill ")) {
      uint64_t n = 0;
      if (absl::SimpleAtoi(line, &n)) return n;
    }
  }
  return 0;
}

absl::Status RemoveCgroupTree(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("opendir ", path, ": ", std::strerror(errno)));
  }
  std::vector<std::string> children;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_type == DT_DIR && std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      children.push_back(path + "/" + e->d_name);
    }
  }
  ::closedir(dir);
  for (const std::string& child : children) {
    absl::Status s = RemoveCgroupTree(child);
    if (!s.ok()) return s;
  }
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) {
    return absl::FailedPreconditionError(absl::StrCat("cannot remove cgroup ", path, ": ",
                                                      std::strerror(errno),
                                                      errno == EBUSY ? " (processes still inside)" : ""));
  }
  return absl::OkStatus();
}

}  // namespace kelpie::runtime
