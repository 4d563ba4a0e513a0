#include "orchestrator/runtime/image/layer_unpacker.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace kelpie::image {
namespace {

constexpr absl::string_view kWhiteoutPrefix = ".wh.";
constexpr absl::string_view kOpaqueMarker = ".wh..wh..opq";

struct DirectoryMetadata {
  std::string full;
  TarEntry entry;
};

std::string JoinPath(const std::string& root, const std::string& relative) {
  return relative.empty() ? root : root + "/" + relative;
}

std::pair<std::string, std::string> SplitParent(const std::string& relative) {
  auto slash = relative.rfind('/');
  if (slash == std::string::npos) return {"", relative};
  return {relative.substr(0, slash), relative.substr(slash + 1)};
}

absl::Status SetTimes(const std::string& full, const TarEntry& entry) {
  struct timespec times[2];
  times[0].tv_sec = entry.mtime_seconds;
  times[0].tv_nsec = entry.mtime_nanoseconds;
  times[1] = times[0];
  if (::utimensat(AT_FDCWD, full.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrCat("cannot set mtime of ", full, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> CleanLayerPath(absl::string_view path) {
  if (absl::StartsWith(path, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("path \"", path, "\" is absolute"));
  }
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat("path \"", path, "\" contains \"..\""));
    }
    parts.emplace_back(part);
  }
  return absl::StrJoin(parts, "/");
}

absl::Status LayerUnpacker::Fail(const TarEntry& entry, absl::string_view why, int err) const {
  std::string message = absl::StrCat("layer ", layer_name_, ": entry \"", entry.path, "\": ", why);
  if (err != 0) absl::StrAppend(&message, ": ", std::strerror(err));
  return absl::Status(err != 0 ? absl::ErrnoToStatusCode(err) : absl::StatusCode::kInvalidArgument,
                      message);
}

absl::Status LayerUnpacker::EnsureParentDirectories(const std::string& relative) {
  std::string parent = SplitParent(relative).first;
  if (parent.empty()) return absl::OkStatus();
  std::string current = root_;
  for (absl::string_view part : absl::StrSplit(parent, '/')) {
    current = absl::StrCat(current, "/", part);
    struct stat st;
    if (::lstat(current.c_str(), &st) != 0) {
      if (errno != ENOENT) {
        return absl::Status(absl::ErrnoToStatusCode(errno),
                            absl::StrCat("cannot stat ", current, ": ", std::strerror(errno)));
      }
      // Layers may omit parent directories; create them as tar does.
      if (::mkdir(current.c_str(), 0755) != 0) {
        return absl::Status(absl::ErrnoToStatusCode(errno),
                            absl::StrCat("cannot create ", current, ": ", std::strerror(errno)));
      }
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "layer ", layer_name_, ": \"", relative, "\" would be written through the symlink \"",
          current.substr(root_.size() + 1), "\" (possible escape from the layer)"));
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat("layer ", layer_name_, ": \"", relative, "\" needs \"",
                                                     current.substr(root_.size() + 1),
                                                     "\" to be a directory, but the layer made it a file"));
    }
  }
  return absl::OkStatus();
}

absl::Status LayerUnpacker::RemoveExisting(const std::string& relative, bool keep_directory) {
  std::string full = JoinPath(root_, relative);
  struct stat st;
  if (::lstat(full.c_str(), &st) != 0) return absl::OkStatus();
  if (keep_directory && S_ISDIR(st.st_mode)) return absl::OkStatus();
  std::error_code ec;
  std::filesystem::remove_all(full, ec);  // does not follow symlinks
  if (ec) return absl::InternalError(absl::StrCat("cannot replace ", full, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status LayerUnpacker::ApplyOwnerAndXattrs(const std::string& full, const TarEntry& entry) {
  if (!options_.privileged) return absl::OkStatus();
  if (::lchown(full.c_str(), static_cast<uid_t>(entry.uid), static_cast<gid_t>(entry.gid)) != 0) {
    return Fail(entry, "cannot set owner", errno);
  }
  for (const auto& [key, value] : entry.xattrs) {
    if (::lsetxattr(full.c_str(), key.c_str(), value.data(), value.size(), 0) != 0) {
      // Some file systems refuse some namespaces; the file is still usable.
      spdlog::warn("layer {}: cannot set xattr {} on {}: {}", layer_name_, key, entry.path,
                   std::strerror(errno));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<UnpackStats> LayerUnpacker::Unpack(TarReader& reader) {
  UnpackStats stats;
  std::vector<DirectoryMetadata> directories;
  std::vector<char> buffer(1 << 16);
  while (true) {
    absl::StatusOr<std::optional<TarEntry>> next = reader.Next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) break;
    TarEntry& entry = **next;
    absl::StatusOr<std::string> cleaned = CleanLayerPath(entry.path);
    if (!cleaned.ok()) return Fail(entry, cleaned.status().message());
    const std::string& relative = *cleaned;
    std::string full = JoinPath(root_, relative);
    auto [parent, base] = SplitParent(relative);

    if (relative.empty()) {  // the layer root itself: only metadata
      if (entry.type == TarEntryType::kDirectory) directories.push_back({full, entry});
      continue;
    }
    KELPIE_RETURN_IF_ERROR(EnsureParentDirectories(relative));

    if (absl::StartsWith(base, kWhiteoutPrefix)) {
      if (!options_.privileged) {
        return absl::FailedPreconditionError(absl::StrCat(
            "layer ", layer_name_, " has whiteout \"", entry.path,
            "\": representing it for overlayfs needs root (mknod, trusted.* xattrs)"));
      }
      std::string parent_full = JoinPath(root_, parent);
      if (base == kOpaqueMarker) {
        if (::setxattr(parent_full.c_str(), "trusted.overlay.opaque", "y", 1, 0) != 0) {
          return Fail(entry, "cannot mark directory opaque", errno);
        }
        ++stats.opaque_directories;
        continue;
      }
      if (absl::StartsWith(base, ".wh..wh.")) continue;  // aufs bookkeeping, not a whiteout
      std::string name = base.substr(kWhiteoutPrefix.size());
      if (name.empty() || name == "." || name == "..") return Fail(entry, "malformed whiteout name");
      std::string target_relative = parent.empty() ? name : parent + "/" + name;
      KELPIE_RETURN_IF_ERROR(RemoveExisting(target_relative, false));
      std::string target = JoinPath(root_, target_relative);
      if (::mknod(target.c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0) {
        return Fail(entry, "cannot create whiteout device", errno);
      }
      ++stats.whiteouts;
      continue;
    }

    KELPIE_RETURN_IF_ERROR(RemoveExisting(relative, entry.type == TarEntryType::kDirectory));
    switch (entry.type) {
      case TarEntryType::kDirectory: {
        if (::mkdir(full.c_str(), 0755) != 0 && errno != EEXIST) {
          return Fail(entry, "cannot create directory", errno);
        }
        KELPIE_RETURN_IF_ERROR(ApplyOwnerAndXattrs(full, entry));
        directories.push_back({full, entry});
        ++stats.directories;
        break;
      }
      case TarEntryType::kRegular: {
        int fd = ::open(full.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) return Fail(entry, "cannot create file", errno);
        absl::Status s;
        while (s.ok()) {
          absl::StatusOr<size_t> n = reader.ReadData(buffer.data(), buffer.size());
          if (!n.ok()) {
            s = n.status();
            break;
          }
          if (*n == 0) break;
          size_t written = 0;
          while (written < *n) {
            ssize_t w = ::write(fd, buffer.data() + written, *n - written);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
              s = Fail(entry, "cannot write", errno);
              break;
            }
            written += static_cast<size_t>(w);
          }
          stats.bytes += *n;
        }
        if (s.ok() && options_.privileged &&
            ::fchown(fd, static_cast<uid_t>(entry.uid), static_cast<gid_t>(entry.gid)) != 0) {
          s = Fail(entry, "cannot set owner", errno);
        }
        // After chown, which clears setuid/setgid bits.
        if (s.ok() && ::fchmod(fd, entry.mode) != 0) s = Fail(entry, "cannot set mode", errno);
        ::close(fd);
        KELPIE_RETURN_IF_ERROR(s);
        if (options_.privileged) {
          for (const auto& [key, value] : entry.xattrs) {
            if (::lsetxattr(full.c_str(), key.c_str(), value.data(), value.size(), 0) != 0) {
              spdlog::warn("layer {}: cannot set xattr {} on {}: {}", layer_name_, key, entry.path,
                           std::strerror(errno));
            }
          }
        }
        KELPIE_RETURN_IF_ERROR(SetTimes(full, entry));
        ++stats.regular_files;
        break;
      }
      case TarEntryType::kSymlink: {
        if (::symlink(entry.link_target.c_str(), full.c_str()) != 0) {
          return Fail(entry, "cannot create symlink", errno);
        }
        KELPIE_RETURN_IF_ERROR(ApplyOwnerAndXattrs(full, entry));
        KELPIE_RETURN_IF_ERROR(SetTimes(full, entry));
        ++stats.symlinks;
        break;
      }
      case TarEntryType::kHardLink: {
        absl::StatusOr<std::string> source = CleanLayerPath(entry.link_target);
        if (!source.ok() || source->empty()) {
          return Fail(entry, absl::StrCat("bad hard-link target \"", entry.link_target, "\""));
        }
        // The source must be reached without symlinks, like every path here.
        KELPIE_RETURN_IF_ERROR(EnsureParentDirectories(*source));
        std::string source_full = JoinPath(root_, *source);
        struct stat st;
        if (::lstat(source_full.c_str(), &st) != 0) {
          return Fail(entry, absl::StrCat("hard-link target \"", entry.link_target,
                                          "\" is not in this layer"));
        }
        if (S_ISDIR(st.st_mode)) return Fail(entry, "hard link to a directory");
        if (::link(source_full.c_str(), full.c_str()) != 0) return Fail(entry, "cannot create hard link", errno);
        ++stats.hard_links;
        break;
      }
      case TarEntryType::kCharDevice:
      case TarEntryType::kBlockDevice:
      case TarEntryType::kFifo: {
        mode_t kind = entry.type == TarEntryType::kCharDevice   ? S_IFCHR
                      : entry.type == TarEntryType::kBlockDevice ? S_IFBLK
                                                                 : S_IFIFO;
        if (kind != S_IFIFO && !options_.privileged) {
          ++stats.skipped_devices;
          continue;
        }
        if (::mknod(full.c_str(), kind | (entry.mode & 07777), makedev(entry.dev_major, entry.dev_minor)) != 0) {
          return Fail(entry, "cannot create device node", errno);
        }
        KELPIE_RETURN_IF_ERROR(ApplyOwnerAndXattrs(full, entry));
        if (::chmod(full.c_str(), entry.mode & 07777) != 0) return Fail(entry, "cannot set mode", errno);
        KELPIE_RETURN_IF_ERROR(SetTimes(full, entry));
        ++stats.devices;
        break;
      }
    }
  }
  // Directory modes and times last: creating children changes a directory's
  // mtime, and a read-only directory mode would block its own children.
  for (auto it = directories.rbegin(); it != directories.rend(); ++it) {
    if (::chmod(it->full.c_str(), it->entry.mode & 07777) != 0) {
      return Fail(it->entry, "cannot set mode", errno);
    }
    KELPIE_RETURN_IF_ERROR(SetTimes(it->full, it->entry));
  }
  if (stats.skipped_devices > 0) {
    spdlog::warn("layer {}: skipped {} device nodes (creating them needs root)", layer_name_,
                 stats.skipped_devices);
  }
  return stats;
}

}  // namespace kelpie::image
