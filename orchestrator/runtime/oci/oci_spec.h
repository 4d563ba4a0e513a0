// Turns a container spec (Kubernetes semantics) and its image's config into
// an OCI runtime spec (config.json) for runc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "orchestrator/runtime/image/image_config.h"
#include "orchestrator/runtime/pod_runtime.h"

namespace kelpie::runtime {

// The process argv as Kubernetes defines it: command replaces the image's
// Entrypoint (and drops its Cmd), args replace Cmd.
std::vector<std::string> ResolveCommand(const image::ImageConfig& image, const ContainerConfig& container);

// Image Env, then the container's env (later names win), PATH defaulted,
// HOSTNAME set. Keeps first-seen order.
std::vector<std::string> MergeEnvironment(const image::ImageConfig& image, const ContainerConfig& container,
                                          const std::string& hostname);

struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
};

// The process identity: runAsUser/runAsGroup win over the image's User
// ("name", "uid", "name:group", "uid:gid"), names are looked up in the
// rootfs's /etc/passwd and /etc/group (their text is passed in), the primary
// group defaults to the passwd entry's; supplementalGroups and the groups
// listing the user by name are added. runAsNonRoot with uid 0 is an error.
absl::StatusOr<ResolvedUser> ResolveUser(const std::string& image_user, const SecurityContext& security,
                                         const std::string& passwd, const std::string& group);

// Default runtime capabilities (the set containerd and CRI-O grant), with
// add/drop applied ("ALL" allowed on both); every capability when privileged.
absl::StatusOr<std::vector<std::string>> ResolveCapabilities(const SecurityContext& security);

struct OciSpecInput {
  ContainerConfig container;
  image::ImageConfig image;
  ResolvedUser user;
  std::string hostname;
  std::string netns_path;    // the pod's network namespace
  std::string cgroups_path;  // relative to the hierarchy roots
  // Bind mounts the runtime adds before the container's own (/etc/hosts,
  // /etc/hostname, /etc/resolv.conf of the sandbox).
  std::vector<VolumeMount> runtime_mounts;
};

// config.json text (root.path "rootfs", relative to the bundle).
absl::StatusOr<std::string> BuildOciSpec(const OciSpecInput& input);

// CPU shares from a request in millicores (Kubernetes' formula, minimum 2).
uint64_t CpuSharesFromMillis(int64_t millis);

}  // namespace kelpie::runtime
