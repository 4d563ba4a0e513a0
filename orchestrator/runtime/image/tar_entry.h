// One member of a tar archive, with ustar, GNU long-name and PAX fields
// already merged.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

namespace kelpie::image {

enum class TarEntryType { kRegular, kDirectory, kSymlink, kHardLink, kCharDevice, kBlockDevice, kFifo };

struct TarEntry {
  TarEntryType type = TarEntryType::kRegular;
  std::string path;         // as stored (not yet cleaned)
  std::string link_target;  // symlink target or hard-link source path
  mode_t mode = 0644;       // permission bits incl. setuid/setgid/sticky
  int64_t uid = 0;
  int64_t gid = 0;
  std::string uname;
  std::string gname;
  uint64_t size = 0;        // bytes of data that follow (regular files)
  int64_t mtime_seconds = 0;
  int64_t mtime_nanoseconds = 0;
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  std::map<std::string, std::string> xattrs;  // PAX SCHILY.xattr.*
  uint64_t data_offset = 0;  // offset of the data in the (uncompressed) stream
};

}  // namespace kelpie::image
