// Unpacks one image layer (an uncompressed tar stream) into a directory
// that overlayfs can use as a lower layer: OCI whiteouts become what
// overlayfs expects (".wh.NAME" -> character device 0/0 named NAME,
// ".wh..wh..opq" -> trusted.overlay.opaque="y" on the directory).
//
// Nothing in the archive can write outside the directory: absolute paths
// and ".." are refused, and no path is ever resolved through a symlink the
// layer itself created.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "orchestrator/runtime/image/tar_reader.h"

namespace kelpie::image {

struct UnpackStats {
  uint64_t regular_files = 0;
  uint64_t directories = 0;
  uint64_t symlinks = 0;
  uint64_t hard_links = 0;
  uint64_t whiteouts = 0;
  uint64_t opaque_directories = 0;
  uint64_t devices = 0;
  uint64_t skipped_devices = 0;  // device nodes need root
  uint64_t bytes = 0;
};

// Cleans a path from a layer into a relative path without "." components
// ("" is the layer root). Absolute paths and ".." are errors.
absl::StatusOr<std::string> CleanLayerPath(absl::string_view path);

class LayerUnpacker {
 public:
  struct Options {
    // Restore owners, device nodes, xattrs and whiteouts: needs root.
    bool privileged = false;
  };

  // `layer_name` (its digest) names the layer in error messages.
  LayerUnpacker(std::string root, std::string layer_name, Options options)
      : root_(std::move(root)), layer_name_(std::move(layer_name)), options_(options) {}

  absl::StatusOr<UnpackStats> Unpack(TarReader& reader);

 private:
  absl::Status EnsureParentDirectories(const std::string& relative);
  absl::Status RemoveExisting(const std::string& relative, bool keep_directory);
  absl::Status ApplyOwnerAndXattrs(const std::string& full, const TarEntry& entry);
  absl::Status Fail(const TarEntry& entry, absl::string_view why, int err = 0) const;

  std::string root_;
  std::string layer_name_;
  Options options_;
};

}  // namespace kelpie::image
