// The parts of an OCI image configuration the kubelet and `kelpie image
// inspect` need, decoded into a small struct.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kelpie::image {

struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // "KEY=value"
  std::string working_dir;
  std::string user;
  std::vector<std::string> exposed_ports;  // "80/tcp"
  std::map<std::string, std::string> labels;
  std::string created;  // RFC 3339, may be empty
  std::string os;
  std::string architecture;
  std::vector<std::string> diff_ids;  // rootfs.diff_ids, bottom layer first

  // The `kelpie image inspect` form (camelCase keys).
  std::string ToJson() const;
};

// Parses an OCI / Docker image config document; `digest` names it in errors.
absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view json, absl::string_view digest);

}  // namespace kelpie::image
