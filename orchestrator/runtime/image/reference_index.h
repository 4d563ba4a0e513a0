// The reference -> image table of the store, one JSON file rewritten
// atomically (temporary file, fsync, rename) on every change, so a crash
// leaves either the old or the new table. Not synchronized: ImageStore
// serializes access.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "orchestrator/runtime/image/image_record.h"

namespace kelpie::image {

class ReferenceIndex {
 public:
  // Loads `path` (missing file = empty index).
  static absl::StatusOr<ReferenceIndex> Load(const std::string& path);

  std::optional<ImageRecord> Find(absl::string_view reference) const;
  std::vector<ImageRecord> All() const;

  absl::Status Put(const ImageRecord& record);
  // Returns false when the reference was not there.
  absl::StatusOr<bool> Remove(absl::string_view reference);

  // Every blob digest some reference still needs, and every layer diff_id.
  std::set<std::string> LiveBlobs() const;
  std::set<std::string> LiveDiffIds() const;

 private:
  explicit ReferenceIndex(std::string path) : path_(std::move(path)) {}
  absl::Status Save() const;

  std::string path_;
  std::map<std::string, ImageRecord, std::less<>> records_;
};

}  // namespace kelpie::image
