// A pod's volumes on the node, under <pods dir>/<pod uid>/volumes/<kind>/<name>:
// emptyDir (a folder, or a tmpfs for medium Memory), hostPath (checked or
// created as its type says), and the content volumes configMap, secret,
// downwardAPI and projected (service-account tokens from the TokenRequest
// API, configMaps, secrets, downward API), written atomically as the
// kubelet does: files in a timestamped folder, "..data" a symlink to it
// swapped by rename, each top-level name a symlink through "..data", so a
// container never reads a half-updated volume. Secret and projected
// volumes live on a tmpfs, so their contents never touch the disk.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "orchestrator/kubelet/container_env.h"
#include "orchestrator/kubelet/pod_api.h"

namespace kelpie::kubelet {

// Path (relative to the volume) -> content and file mode.
struct VolumeFile {
  std::string content;
  int mode = 0644;
};
using VolumeFiles = std::map<std::string, VolumeFile>;

// Writes `files` into `dir` atomically (see above); does nothing when the
// volume already holds exactly these files.
absl::Status WriteAtomicVolume(const std::string& dir, const VolumeFiles& files);

class PodVolumes {
 public:
  PodVolumes(std::string pod_dir, PodApi& api) : pod_dir_(std::move(pod_dir)), api_(api) {}

  // Creates every volume of the pod, or brings the content volumes up to
  // date (sources changed, tokens at 80% of their lifetime). Returns each
  // volume's host path by name.
  absl::StatusOr<std::map<std::string, std::string>> Sync(const nlohmann::json& pod, const PodEnvContext& context);

  // Unmounts every mount below `pod_dir` and removes it.
  static absl::Status Teardown(const std::string& pod_dir);

 private:
  absl::StatusOr<VolumeFiles> ContentFiles(const nlohmann::json& pod, const nlohmann::json& volume,
                                           const std::string& kind, const PodEnvContext& context);
  absl::StatusOr<std::string> Token(const nlohmann::json& pod, const std::string& cache_key,
                                    const nlohmann::json& source);

  struct CachedToken {
    std::string token;
    std::chrono::system_clock::time_point refresh_at;
  };
  std::string pod_dir_;
  PodApi& api_;
  std::map<std::string, CachedToken> tokens_;
};

}  // namespace kelpie::kubelet
