// Blobs addressed by their sha256 digest under <root>/blobs/sha256/<hex>.
// Every blob is hashed while it is written and only renamed into place when
// its digest (and size, when known) match, so a stored blob is always
// exactly the bytes its name promises. Safe for concurrent use: each write
// goes through its own temporary file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "orchestrator/runtime/image/byte_source.h"

namespace kelpie::image {

struct BlobInfo {
  std::string digest;
  uint64_t size = 0;
};

// A blob being written piece by piece (a download): bytes are hashed as
// they are appended and the blob only enters the store on Commit, when its
// digest (and size) match. Dropped without Commit, nothing is left behind.
class BlobWriter {
 public:
  ~BlobWriter();
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  absl::Status Append(const char* data, size_t size);
  uint64_t size() const { return size_; }
  // Verifies and renames into place. `expected_digest` empty = any content.
  absl::StatusOr<BlobInfo> Commit(absl::string_view expected_digest, int64_t expected_size = -1);

 private:
  friend class ContentStore;
  BlobWriter(const class ContentStore& store, int fd, std::string temp_path)
      : store_(store), fd_(fd), temp_path_(std::move(temp_path)) {}
  const ContentStore& store_;
  int fd_;
  std::string temp_path_;
  Sha256Hasher hasher_;
  uint64_t size_ = 0;
  bool done_ = false;
};

class ContentStore {
 public:
  // `root` is the image store folder; blobs live in root/blobs/sha256 and
  // temporary files in root/tmp (same file system, so renames are atomic).
  static absl::StatusOr<std::unique_ptr<ContentStore>> Open(const std::string& root);

  // Streams `content` into the store. When `expected_digest` is not empty
  // the content must hash to it (and have `expected_size` bytes when that is
  // >= 0); otherwise the digest is computed and returned.
  absl::StatusOr<BlobInfo> Write(ByteSource& content, absl::string_view expected_digest,
                                 int64_t expected_size = -1);
  // Starts a blob written piece by piece (see BlobWriter).
  absl::StatusOr<std::unique_ptr<BlobWriter>> NewWriter();
  absl::StatusOr<BlobInfo> WriteString(absl::string_view content, absl::string_view expected_digest = {});

  bool Contains(absl::string_view digest) const;
  std::string PathOf(absl::string_view digest) const;
  absl::StatusOr<uint64_t> SizeOf(absl::string_view digest) const;

  // Reads a small blob (manifest, config) whole, re-verifying its digest so
  // damage on disk is reported instead of being parsed.
  absl::StatusOr<std::string> ReadVerified(absl::string_view digest, uint64_t limit) const;
  absl::StatusOr<std::unique_ptr<FileSource>> OpenBlob(absl::string_view digest) const;

  absl::Status Delete(absl::string_view digest);
  absl::StatusOr<std::vector<std::string>> List() const;

  const std::string& temp_dir() const { return temp_dir_; }

 private:
  ContentStore(std::string blob_dir, std::string temp_dir)
      : blob_dir_(std::move(blob_dir)), temp_dir_(std::move(temp_dir)) {}
  std::string blob_dir_;
  std::string temp_dir_;
};

}  // namespace kelpie::image
