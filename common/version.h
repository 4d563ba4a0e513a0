// Build and version facts, shared by `kelpie version` and the API's /version.
#pragma once

#include <string>

namespace kelpie {

struct VersionInfo {
  std::string kelpie_version;  // 0.1.0
  std::string kube_major;      // "1"
  std::string kube_minor;      // "32"
  std::string git_version;     // v1.32.0+kelpie.0.1.0 (what kubectl prints)
  std::string git_commit;
  std::string git_tree_state;  // clean | dirty
  std::string build_date;      // RFC 3339
  std::string compiler;
  std::string platform;        // linux/amd64
};

const VersionInfo& GetVersionInfo();

}  // namespace kelpie
