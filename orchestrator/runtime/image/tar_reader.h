// A streaming tar reader: POSIX ustar, GNU long names/links ('L'/'K'),
// base-256 numbers, and PAX extended headers ('x' per entry, 'g' global)
// for path, linkpath, size, mtime, uid, gid, uname, gname and xattrs.
// Every malformed or truncated archive is an error naming the archive and
// the byte offset, never a silent partial read.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "orchestrator/runtime/image/byte_source.h"
#include "orchestrator/runtime/image/tar_entry.h"

namespace kelpie::image {

class TarReader {
 public:
  // `name` identifies the archive in error messages (a file or a digest).
  TarReader(ByteSource& source, std::string name) : source_(source), name_(std::move(name)) {}

  // Advances to the next entry, skipping unread data of the current one.
  // Returns nullopt at the end of the archive.
  absl::StatusOr<std::optional<TarEntry>> Next();

  // Reads up to `size` bytes of the current entry's data; 0 at its end.
  absl::StatusOr<size_t> ReadData(char* buffer, size_t size);

  // The whole data of the current entry (for small members such as JSON).
  absl::StatusOr<std::string> ReadAllData(uint64_t limit);

  // Bytes consumed from the underlying stream so far.
  uint64_t position() const { return position_; }

 private:
  absl::Status ReadBlock(char* block, const char* what);
  absl::Status SkipRemaining();
  absl::StatusOr<std::string> ReadSpecialData(uint64_t size, const char* what);
  absl::Status ParsePax(const std::string& data, std::map<std::string, std::string>* into);

  ByteSource& source_;
  std::string name_;
  uint64_t position_ = 0;
  uint64_t remaining_ = 0;  // data bytes of the current entry not yet read
  uint64_t padding_ = 0;    // padding after the current entry's data
  bool finished_ = false;
  std::map<std::string, std::string> global_pax_;
};

}  // namespace kelpie::image
