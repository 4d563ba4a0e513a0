// Writes tar archives into memory: ustar headers, with a PAX extended
// header (or, on request, GNU 'L'/'K' records) for names that do not fit.
// Used to build test images and converted archives.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "orchestrator/runtime/image/tar_entry.h"

namespace kelpie::image {

class TarWriter {
 public:
  enum class LongNames { kPax, kGnu };
  explicit TarWriter(LongNames long_names = LongNames::kPax) : long_names_(long_names) {}

  // Appends one entry; `data` is used for regular files only.
  void Add(const TarEntry& entry, absl::string_view data = {});

  void AddDirectory(const std::string& path, mode_t mode = 0755);
  void AddFile(const std::string& path, absl::string_view data, mode_t mode = 0644);
  void AddSymlink(const std::string& path, const std::string& target);
  void AddHardLink(const std::string& path, const std::string& target);

  // The archive with its two terminating zero blocks.
  std::string Finish();

  // The bytes written so far, without the end marker.
  const std::string& bytes() const { return out_; }

 private:
  void AppendHeader(const TarEntry& entry, char type, const std::string& name,
                    const std::string& link, uint64_t size);
  void AppendData(absl::string_view data);

  LongNames long_names_;
  std::string out_;
};

}  // namespace kelpie::image
