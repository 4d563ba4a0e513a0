// Builds small OCI images for tests: the busybox image (busybox-static and
// its applet links, about 1 MiB compressed) and images from arbitrary layers.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie::testing {

struct OciImageSpec {
  std::string ref_name;  // org.opencontainers.image.ref.name ("" = none)
  std::vector<std::string> layers;  // uncompressed layer tars, bottom first
  bool gzip_layers = true;
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::string user;
  std::vector<std::string> exposed_ports;
  std::string created = "2024-01-01T00:00:00Z";
};

// The image config JSON of `spec` with the given diff_ids.
std::string ImageConfigJson(const OciImageSpec& spec, const std::vector<std::string>& diff_ids);

// Writes an OCI image layout archive (oci-layout, index.json, blobs/) to `path`.
absl::Status WriteOciArchive(const std::string& path, const OciImageSpec& spec);

// The busybox root file system as one uncompressed layer tar: /bin/busybox
// from busybox-static, a link for each applet, /etc/passwd and /etc/group,
// and the usual empty folders (tmp, proc, sys, dev).
absl::StatusOr<std::string> BuildBusyboxLayer();

// Writes the busybox image as an OCI archive into `dir` and returns its path.
absl::StatusOr<std::string> BuildBusyboxImage(const std::string& dir,
                                              const std::string& ref_name = "busybox:latest");

}  // namespace kelpie::testing
