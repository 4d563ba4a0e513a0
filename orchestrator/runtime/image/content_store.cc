#include "orchestrator/runtime/image/content_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace kelpie::image {
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path, int err) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ContentStore>> ContentStore::Open(const std::string& root) {
  std::string blob_dir = root + "/blobs/sha256";
  std::string temp_dir = root + "/tmp";
  KELPIE_RETURN_IF_ERROR(MakeDirectories(blob_dir, 0755));
  KELPIE_RETURN_IF_ERROR(MakeDirectories(temp_dir, 0700));
  return std::unique_ptr<ContentStore>(new ContentStore(blob_dir, temp_dir));
}

std::string ContentStore::PathOf(absl::string_view digest) const {
  return absl::StrCat(blob_dir_, "/", DigestHex(digest));
}

bool ContentStore::Contains(absl::string_view digest) const {
  return ValidateDigest(digest).ok() && PathExists(PathOf(digest));
}

absl::StatusOr<uint64_t> ContentStore::SizeOf(absl::string_view digest) const {
  KELPIE_RETURN_IF_ERROR(ValidateDigest(digest));
  struct stat st;
  std::string path = PathOf(digest);
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("blob ", digest, " is not in the store"));
    return ErrnoError("cannot stat", path, errno);
  }
  return static_cast<uint64_t>(st.st_size);
}

BlobWriter::~BlobWriter() {
  if (!done_) {
    ::close(fd_);
    ::unlink(temp_path_.c_str());
  }
}

absl::Status BlobWriter::Append(const char* data, size_t size) {
  if (done_) return absl::FailedPreconditionError("blob writer already finished");
  hasher_.Update(data, size);
  size_t written = 0;
  while (written < size) {
    ssize_t w = ::write(fd_, data + written, size - written);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return ErrnoError("cannot write", temp_path_, errno);
    written += static_cast<size_t>(w);
  }
  size_ += size;
  return absl::OkStatus();
}

absl::StatusOr<BlobInfo> BlobWriter::Commit(absl::string_view expected_digest, int64_t expected_size) {
  if (done_) return absl::FailedPreconditionError("blob writer already finished");
  if (!expected_digest.empty()) KELPIE_RETURN_IF_ERROR(ValidateDigest(expected_digest));
  BlobInfo info{hasher_.FinishDigest(), size_};
  if (!expected_digest.empty() && info.digest != expected_digest) {
    return absl::DataLossError(absl::StrCat("blob ", expected_digest, " is corrupt: its content hashes to ",
                                            info.digest));
  }
  if (expected_size >= 0 && info.size != static_cast<uint64_t>(expected_size)) {
    return absl::DataLossError(absl::StrCat("blob ", info.digest, " has ", info.size,
                                            " bytes but its descriptor says ", expected_size));
  }
  if (::fchmod(fd_, 0444) != 0 || ::fsync(fd_) != 0) return ErrnoError("cannot sync", temp_path_, errno);
  done_ = true;
  ::close(fd_);
  std::string final_path = store_.PathOf(info.digest);
  if (::rename(temp_path_.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    ::unlink(temp_path_.c_str());
    return ErrnoError("cannot store blob as", final_path, err);
  }
  return info;
}

absl::StatusOr<std::unique_ptr<BlobWriter>> ContentStore::NewWriter() {
  std::string temp = temp_dir_ + "/blob-XXXXXX";
  int fd = ::mkstemp(temp.data());
  if (fd < 0) return ErrnoError("cannot create a temporary file in", temp_dir_, errno);
  return std::unique_ptr<BlobWriter>(new BlobWriter(*this, fd, std::move(temp)));
}

absl::StatusOr<BlobInfo> ContentStore::Write(ByteSource& content, absl::string_view expected_digest,
                                             int64_t expected_size) {
  if (!expected_digest.empty()) KELPIE_RETURN_IF_ERROR(ValidateDigest(expected_digest));
  KELPIE_ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> writer, NewWriter());
  char buffer[65536];
  while (true) {
    absl::StatusOr<size_t> n = content.Read(buffer, sizeof(buffer));
    if (!n.ok()) {
      return absl::Status(n.status().code(),
                          absl::StrCat("blob ", expected_digest.empty() ? "(new)" : expected_digest, ": ",
                                       n.status().message()));
    }
    if (*n == 0) break;
    KELPIE_RETURN_IF_ERROR(writer->Append(buffer, *n));
  }
  return writer->Commit(expected_digest, expected_size);
}

absl::StatusOr<BlobInfo> ContentStore::WriteString(absl::string_view content, absl::string_view expected_digest) {
  StringSource source{std::string(content)};
  return Write(source, expected_digest, -1);
}

absl::StatusOr<std::string> ContentStore::ReadVerified(absl::string_view digest, uint64_t limit) const {
  KELPIE_ASSIGN_OR_RETURN(uint64_t size, SizeOf(digest));
  if (size > limit) {
    return absl::InvalidArgumentError(absl::StrCat("blob ", digest, " is ", size, " bytes, over the ",
                                                   limit, "-byte limit for this kind of document"));
  }
  KELPIE_ASSIGN_OR_RETURN(std::string data, ReadFileToString(PathOf(digest)));
  std::string actual = Sha256Digest(data);
  if (actual != digest) {
    return absl::DataLossError(absl::StrCat("blob ", digest, " is corrupt on disk: its content hashes to ", actual));
  }
  return data;
}

absl::StatusOr<std::unique_ptr<FileSource>> ContentStore::OpenBlob(absl::string_view digest) const {
  KELPIE_RETURN_IF_ERROR(ValidateDigest(digest));
  if (!Contains(digest)) return absl::NotFoundError(absl::StrCat("blob ", digest, " is not in the store"));
  return FileSource::Open(PathOf(digest));
}

absl::Status ContentStore::Delete(absl::string_view digest) {
  KELPIE_RETURN_IF_ERROR(ValidateDigest(digest));
  std::string path = PathOf(digest);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError("cannot delete blob", path, errno);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ContentStore::List() const {
  DIR* dir = ::opendir(blob_dir_.c_str());
  if (dir == nullptr) return ErrnoError("cannot list", blob_dir_, errno);
  std::vector<std::string> out;
  while (struct dirent* e = ::readdir(dir)) {
    std::string digest = absl::StrCat("sha256:", e->d_name);
    if (ValidateDigest(digest).ok()) out.push_back(digest);
  }
  ::closedir(dir);
  return out;
}

}  // namespace kelpie::image
