#include "orchestrator/runtime/network/network_namespace.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"

namespace kelpie::runtime {

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

bool IsNetworkNamespace(const std::string& path) {
  struct statfs fs;
  return ::statfs(path.c_str(), &fs) == 0 && static_cast<unsigned long>(fs.f_type) == NSFS_MAGIC;
}

absl::Status CreateNetworkNamespace(const std::string& path) {
  if (IsNetworkNamespace(path)) {
    return absl::AlreadyExistsError(absl::StrCat("network namespace already mounted at ", path));
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
  if (fd < 0) return absl::InternalError(absl::StrCat("create ", path, ": ", std::strerror(errno)));
  ::close(fd);
  // unshare() changes the calling thread only: do it on a short-lived thread
  // so no thread of the agent ever changes namespace.
  absl::Status status;
  std::thread worker([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      status = absl::InternalError(absl::StrCat("unshare(CLONE_NEWNET): ", std::strerror(errno)));
      return;
    }
    std::string self = absl::StrCat("/proc/self/task/", ::syscall(SYS_gettid), "/ns/net");
    if (::mount(self.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      status = absl::InternalError(absl::StrCat("bind mount of a new network namespace on ", path,
                                                ": ", std::strerror(errno)));
    }
  });
  worker.join();
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

absl::Status RemoveNetworkNamespace(const std::string& path) {
  if (::access(path.c_str(), F_OK) != 0) return absl::OkStatus();
  // Lazy unmount: a process still inside keeps the namespace alive, the name
  // goes away now.
  while (IsNetworkNamespace(path)) {
    if (::umount2(path.c_str(), MNT_DETACH) != 0) {
      return absl::InternalError(absl::StrCat("umount ", path, ": ", std::strerror(errno)));
    }
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat("unlink ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace kelpie::runtime
