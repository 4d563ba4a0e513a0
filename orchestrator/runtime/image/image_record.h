// What the store knows about one image reference.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kelpie::image {

struct ImageRecord {
  std::string reference;        // normalized: docker.io/library/busybox:latest
  std::string manifest_digest;  // the linux/amd64 OCI manifest
  std::string config_digest;
  std::vector<std::string> layer_digests;  // blobs as stored (maybe compressed)
  std::vector<std::string> diff_ids;       // uncompressed layer digests
  uint64_t size = 0;                       // config + layer blobs, bytes
  std::string created;                     // from the image config (RFC 3339)
  int64_t imported_unix = 0;
};

}  // namespace kelpie::image
