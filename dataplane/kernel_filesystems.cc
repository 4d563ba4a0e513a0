#include "dataplane/kernel_filesystems.h"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace kelpie::dataplane {
namespace {

bool HasMagic(const std::string& path, long magic) {
  struct statfs st;
  return ::statfs(path.c_str(), &st) == 0 && static_cast<long>(st.f_type) == magic;
}

absl::Status MountAt(const std::string& fstype, const std::string& path) {
  if (::mount(fstype.c_str(), path.c_str(), fstype.c_str(), 0, nullptr) != 0) {
    int err = errno;
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat("mount -t ", fstype, " ", fstype, " ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsBpffs(const std::string& path) { return HasMagic(path, BPF_FS_MAGIC); }
bool IsTracefs(const std::string& path) { return HasMagic(path, TRACEFS_MAGIC); }

absl::Status EnsureBpffs(const std::string& path) {
  if (IsBpffs(path)) return absl::OkStatus();
  if (absl::Status s = MakeDirectories(path, 0700); !s.ok()) return s;
  return MountAt("bpf", path);
}

absl::Status EnsureTracefs() {
  const std::string path = "/sys/kernel/tracing";
  if (IsTracefs(path)) return absl::OkStatus();
  return MountAt("tracefs", path);
}

absl::Status ProbeMount(const std::string& fstype) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = absl::StrCat(tmp ? tmp : "/tmp", "/kelpie-probe-", fstype, "-XXXXXX");
  if (::mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
  }
  absl::Status s = MountAt(fstype == "bpf" ? "bpf" : fstype, templ);
  if (s.ok()) ::umount2(templ.c_str(), MNT_DETACH);
  ::rmdir(templ.c_str());
  return s;
}

CgroupV2Root DetectCgroupV2Root(const std::string& cgroup_mount) {
  if (HasMagic(cgroup_mount, CGROUP2_SUPER_MAGIC)) return {CgroupLayout::kUnified, cgroup_mount};
  std::string unified = cgroup_mount + "/unified";
  if (HasMagic(unified, CGROUP2_SUPER_MAGIC)) return {CgroupLayout::kHybrid, unified};
  return {CgroupLayout::kNone, ""};
}

}  // namespace kelpie::dataplane
