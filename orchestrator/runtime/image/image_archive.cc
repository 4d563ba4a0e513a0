#include "orchestrator/runtime/image/image_archive.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "orchestrator/runtime/image/layer_unpacker.h"
#include "orchestrator/runtime/image/tar_reader.h"

namespace kelpie::image {
namespace {

absl::Status Decompress(const std::string& path, const std::string& out_path) {
  KELPIE_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> file, FileSource::Open(path));
  GzipSource gzip(*file, path);
  int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrCat("cannot create ", out_path, ": ", std::strerror(errno)));
  }
  char buffer[65536];
  absl::Status status;
  while (status.ok()) {
    absl::StatusOr<size_t> n = gzip.Read(buffer, sizeof(buffer));
    if (!n.ok()) {
      status = n.status();
      break;
    }
    if (*n == 0) break;
    size_t written = 0;
    while (written < *n) {
      ssize_t w = ::write(fd, buffer + written, *n - written);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        status = absl::Status(absl::ErrnoToStatusCode(errno),
                              absl::StrCat("cannot write ", out_path, ": ", std::strerror(errno)));
        break;
      }
      written += static_cast<size_t>(w);
    }
  }
  ::close(fd);
  return status;
}

// Resolves "..", "." and empty components of a link target lexically;
// nullopt when it climbs above the archive root.
std::optional<std::string> ResolveWithinArchive(absl::string_view path) {
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) return std::nullopt;
      parts.pop_back();
      continue;
    }
    parts.emplace_back(part);
  }
  return absl::StrJoin(parts, "/");
}

}  // namespace

absl::StatusOr<std::unique_ptr<ImageArchive>> ImageArchive::Open(const std::string& path,
                                                                 const std::string& temp_dir) {
  std::string head;
  {
    KELPIE_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> file, FileSource::Open(path, 0, -1));
    char magic[2];
    KELPIE_ASSIGN_OR_RETURN(size_t n, file->Read(magic, 2));
    head.assign(magic, n);
  }
  std::unique_ptr<ImageArchive> archive;
  if (LooksGzipped(head)) {
    std::string tar_path = temp_dir + "/archive-XXXXXX";
    int fd = ::mkstemp(tar_path.data());
    if (fd < 0) return absl::InternalError(absl::StrCat("cannot create a temporary file in ", temp_dir));
    ::close(fd);
    ::unlink(tar_path.c_str());
    archive.reset(new ImageArchive(path, tar_path, true));
    KELPIE_RETURN_IF_ERROR(Decompress(path, tar_path));
  } else {
    archive.reset(new ImageArchive(path, path, false));
  }
  KELPIE_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> file, FileSource::Open(archive->tar_path_));
  TarReader reader(*file, path);
  while (true) {
    KELPIE_ASSIGN_OR_RETURN(std::optional<TarEntry> entry, reader.Next());
    if (!entry) break;
    absl::StatusOr<std::string> name = CleanLayerPath(entry->path);
    if (!name.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("image archive ", path, ": ", name.status().message()));
    }
    Member member;
    member.offset = entry->data_offset;
    member.size = entry->size;
    if (entry->type == TarEntryType::kSymlink || entry->type == TarEntryType::kHardLink) {
      // Symlink targets are relative to the link's folder; hard links to the root.
      std::string target = entry->link_target;
      if (entry->type == TarEntryType::kSymlink && !target.empty() && target[0] != '/') {
        auto slash = name->rfind('/');
        if (slash != std::string::npos) target = name->substr(0, slash + 1) + target;
      }
      std::optional<std::string> cleaned = ResolveWithinArchive(target);
      if (!cleaned || target.empty() || target[0] == '/') {
        return absl::InvalidArgumentError(absl::StrCat("image archive ", path, ": link \"", entry->path,
                                                       "\" points outside the archive"));
      }
      member.link = *cleaned;
    } else if (entry->type != TarEntryType::kRegular) {
      continue;
    }
    archive->members_[*name] = member;
  }
  return archive;
}

ImageArchive::~ImageArchive() {
  if (owns_tar_) ::unlink(tar_path_.c_str());
}

absl::StatusOr<const ImageArchive::Member*> ImageArchive::Resolve(absl::string_view member) const {
  std::string name(member);
  for (int hops = 0; hops < 16; ++hops) {
    auto it = members_.find(name);
    if (it == members_.end()) {
      return absl::NotFoundError(absl::StrCat("image archive ", name_, " has no member \"", member, "\""));
    }
    if (it->second.link.empty()) return &it->second;
    name = it->second.link;
  }
  return absl::InvalidArgumentError(absl::StrCat("image archive ", name_, ": too many links resolving \"",
                                                 member, "\""));
}

bool ImageArchive::Has(absl::string_view member) const { return Resolve(member).ok(); }

absl::StatusOr<uint64_t> ImageArchive::SizeOf(absl::string_view member) const {
  KELPIE_ASSIGN_OR_RETURN(const Member* m, Resolve(member));
  return m->size;
}

absl::StatusOr<std::unique_ptr<FileSource>> ImageArchive::OpenMember(absl::string_view member) const {
  KELPIE_ASSIGN_OR_RETURN(const Member* m, Resolve(member));
  return FileSource::Open(tar_path_, m->offset, static_cast<int64_t>(m->size));
}

absl::StatusOr<std::string> ImageArchive::ReadSmall(absl::string_view member, uint64_t limit) const {
  KELPIE_ASSIGN_OR_RETURN(const Member* m, Resolve(member));
  if (m->size > limit) {
    return absl::InvalidArgumentError(absl::StrCat("image archive ", name_, ": \"", member, "\" is ", m->size,
                                                   " bytes, over the ", limit, "-byte limit"));
  }
  KELPIE_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> source, OpenMember(member));
  std::string data(m->size, '\0');
  KELPIE_RETURN_IF_ERROR(ReadFully(*source, data.data(), data.size(), absl::StrCat(name_, ": ", member)));
  return data;
}

}  // namespace kelpie::image
