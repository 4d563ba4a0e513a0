// PodRuntime on runc, the standard CNI plugins and cgroup v2 pod directories.
// Everything it knows lives in files under its state directory, so any
// number of RuncPodRuntime objects (and restarted agents) over one state
// directory see the same sandboxes and containers:
//
//   <state>/sandboxes/<id>/sandbox.json   the sandbox record (+ hosts, hostname, resolv.conf)
//   <state>/netns/<id>                    the pod's network namespace (bind mount)
//   <state>/containers/<id>/              the OCI bundle: config.json, rootfs (overlay
//                                         mount), upper/, work/, container.json,
//                                         exit.json (written by the shim), runc.log, shim.log
//   <state>/runc/                         runc --root
//   <state>/cni/                          conflist and host-local leases
//
// Each container has a shim process (see runc/container_shim.h) that holds
// its output pipes and reaps its exit status; the runtime itself holds no
// container resources, so the agent may restart at any time.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/subprocess.h"
#include "orchestrator/runtime/cgroup/pod_cgroups.h"
#include "orchestrator/runtime/network/cni_network.h"
#include "orchestrator/runtime/pod_runtime.h"

namespace kelpie::image {
class ImageStore;
}

namespace kelpie::runtime {

struct RuncRuntimeOptions {
  std::string state_dir = "/var/lib/kelpie/runtime";
  std::string log_dir = "/var/log/pods";
  std::string runc = "runc";
  // How to run the shim: the kelpie binary and "runtime-shim".
  std::vector<std::string> shim_command;
  // Relative to the cgroup hierarchy roots.
  std::string cgroup_parent = "/kelpie.slice";
  CniOptions cni;  // cni.state_dir defaults to <state>/cni
  uint64_t log_max_size = 10 * 1024 * 1024;
  int log_max_files = 5;
};

class RuncPodRuntime : public PodRuntime {
 public:
  // `images` must outlive the runtime. `hierarchy` is detected when absent.
  static absl::StatusOr<std::unique_ptr<RuncPodRuntime>> Create(
      RuncRuntimeOptions options, image::ImageStore& images,
      std::optional<CgroupHierarchy> hierarchy = std::nullopt);

  absl::StatusOr<std::string> RunPodSandbox(const PodSandboxConfig& config) override;
  absl::Status StopPodSandbox(const std::string& sandbox_id) override;
  absl::Status RemovePodSandbox(const std::string& sandbox_id) override;
  absl::StatusOr<PodSandboxStatus> GetPodSandboxStatus(const std::string& sandbox_id) override;
  absl::StatusOr<std::vector<PodSandboxStatus>> ListPodSandboxes() override;

  absl::StatusOr<std::string> CreateContainer(const std::string& sandbox_id,
                                              const ContainerConfig& config) override;
  absl::Status StartContainer(const std::string& container_id) override;
  // One `runc run --detach` instead of `runc create` plus `runc start`.
  absl::StatusOr<std::string> RunContainer(const std::string& sandbox_id, const ContainerConfig& config) override;
  absl::Status StopContainer(const std::string& container_id, std::chrono::seconds grace) override;
  absl::Status RemoveContainer(const std::string& container_id) override;
  absl::StatusOr<ContainerStatus> GetContainerStatus(const std::string& container_id) override;
  absl::StatusOr<std::vector<ContainerStatus>> ListContainers(const std::string& sandbox_id = "") override;

  absl::StatusOr<ExecSyncResult> ExecSync(const std::string& container_id,
                                          const std::vector<std::string>& command,
                                          std::chrono::milliseconds timeout) override;
  absl::StatusOr<std::unique_ptr<ExecSession>> Exec(const std::string& container_id,
                                                    const ExecRequest& request) override;

  const RuncRuntimeOptions& options() const { return options_; }
  PodCgroups& cgroups() { return cgroups_; }
  const CniNetwork& network() const { return network_; }
  std::string runc_root() const { return options_.state_dir + "/runc"; }
  std::string SandboxDir(const std::string& id) const;
  std::string ContainerDir(const std::string& id) const;
  std::string NetnsPath(const std::string& id) const;

 private:
  RuncPodRuntime(RuncRuntimeOptions options, image::ImageStore& images, PodCgroups cgroups,
                 CniNetwork network);

  struct SandboxRecord;
  absl::StatusOr<std::string> MakeContainer(const std::string& sandbox_id, const ContainerConfig& config,
                                            bool start);
  struct ContainerRecord;
  absl::StatusOr<SandboxRecord> LoadSandbox(const std::string& id) const;
  absl::Status SaveSandbox(const SandboxRecord& record) const;
  absl::StatusOr<ContainerRecord> LoadContainer(const std::string& id) const;
  absl::Status SaveContainer(const ContainerRecord& record) const;
  std::vector<std::string> ListIds(const std::string& dir) const;
  ContainerStatus StatusOf(const ContainerRecord& record) const;
  absl::Status StopContainerLocked(const std::string& id, std::chrono::seconds grace);
  absl::Status RemoveContainerLocked(const std::string& id);
  absl::Status StopSandboxLocked(SandboxRecord& record);
  absl::StatusOr<SubprocessResult> Runc(const std::vector<std::string>& args) const;
  bool WaitForExit(const ContainerRecord& record, std::chrono::milliseconds timeout) const;

  RuncRuntimeOptions options_;
  image::ImageStore& images_;
  PodCgroups cgroups_;
  CniNetwork network_;
  // Lifecycle changes are serialized per sandbox (the sandbox and its
  // containers), so different pods start and stop in parallel; a pod's
  // graceful stop never holds up another pod.
  struct SandboxGuard {
    std::shared_ptr<std::mutex> mutex;
    std::unique_lock<std::mutex> lock;
  };
  SandboxGuard LockSandbox(const std::string& sandbox_id);
  // Locks the sandbox of the container ("" when the container is unknown).
  SandboxGuard LockContainerSandbox(const std::string& container_id);
  std::mutex locks_mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> sandbox_locks_;
};

}  // namespace kelpie::runtime
