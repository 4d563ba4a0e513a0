// Random access to the members of an image archive file (OCI layout or
// docker save, optionally gzip-compressed as a whole). One pass records
// where each member's bytes are; blobs are then streamed straight from the
// archive into the content store without unpacking the archive anywhere.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "orchestrator/runtime/image/byte_source.h"

namespace kelpie::image {

class ImageArchive {
 public:
  // A gzip-compressed archive is first decompressed into `temp_dir`.
  static absl::StatusOr<std::unique_ptr<ImageArchive>> Open(const std::string& path,
                                                            const std::string& temp_dir);
  ~ImageArchive();

  bool Has(absl::string_view member) const;
  absl::StatusOr<std::string> ReadSmall(absl::string_view member, uint64_t limit) const;
  absl::StatusOr<std::unique_ptr<FileSource>> OpenMember(absl::string_view member) const;
  absl::StatusOr<uint64_t> SizeOf(absl::string_view member) const;

  const std::string& name() const { return name_; }

 private:
  struct Member {
    uint64_t offset = 0;
    uint64_t size = 0;
    std::string link;  // symlink or hard-link target (already cleaned), if any
  };
  ImageArchive(std::string name, std::string tar_path, bool owns_tar)
      : name_(std::move(name)), tar_path_(std::move(tar_path)), owns_tar_(owns_tar) {}
  absl::StatusOr<const Member*> Resolve(absl::string_view member) const;

  std::string name_;      // the file the user gave
  std::string tar_path_;  // the uncompressed tar
  bool owns_tar_;
  std::map<std::string, Member, std::less<>> members_;
};

}  // namespace kelpie::image
