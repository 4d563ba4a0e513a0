// One pod on this node, driven by its own thread: the sandbox (network,
// DNS, hostPorts), volumes, init containers in order, then the containers
// with their restart policy and CrashLoopBackOff, probes, graceful
// termination on deletion, and the pod status patched through pods/status
// whenever it changed. A worker created for a pod whose sandbox and
// containers already run (a restarted kubelet) adopts them as they are.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "orchestrator/kubelet/container_env.h"
#include "orchestrator/kubelet/image_pull_manager.h"
#include "orchestrator/kubelet/pod_api.h"
#include "orchestrator/kubelet/pod_start_limiter.h"
#include "orchestrator/kubelet/pod_volumes.h"
#include "orchestrator/kubelet/prober.h"
#include "orchestrator/runtime/pod_runtime.h"

namespace kelpie::image {
class ImageStore;
}

namespace kelpie::kubelet {

struct PodWorkerOptions {
  std::string node_name;
  std::string node_ip;
  // Pod folders (volumes) live in <pods_dir>/<pod uid>.
  std::string pods_dir;
  // dnsPolicy ClusterFirst: the cluster DNS address ("" = the host's resolv.conf).
  std::string cluster_dns = "10.43.0.10";
  std::string cluster_domain = "cluster.local";
  // The node's allocatable, for resourceFieldRef of containers without limits.
  int64_t node_cpu_millis = 0;
  int64_t node_memory_bytes = 0;
  // How often a worker looks at its containers (exits, probes due).
  std::chrono::milliseconds poll_interval{500};
  // CrashLoopBackOff: the first restart is immediate, then `backoff_initial`
  // doubling up to `backoff_max`; a container that ran `backoff_reset`
  // starts over.
  std::chrono::milliseconds backoff_initial{10000};
  std::chrono::milliseconds backoff_max{300000};
  std::chrono::milliseconds backoff_reset{600000};
  // configMap/secret/downwardAPI/projected volumes are re-read this often.
  std::chrono::milliseconds volume_refresh{30000};
  // How many pods may be starting (sandbox, volumes, containers) at once;
  // the others wait their turn in arrival order (see PodStartLimiter).
  int max_parallel_starts = 8;
  // The image pull step (imagePullPolicy, registry pulls, ErrImagePull /
  // ImagePullBackOff). Unset: images must already be in the store.
  std::shared_ptr<ImagePullManager> image_pulls;
};

// Pod state the sandbox's labels carry, so adoption finds pods by uid.
inline constexpr const char* kPodUidLabel = "io.kubernetes.pod.uid";

class PodWorker {
 public:
  // Starts the worker's thread. `images` may be null (every image then
  // counts as present); `start_limiter` may be null (no bound on parallel
  // starts) and must outlive the worker.
  PodWorker(const PodWorkerOptions& options, runtime::PodRuntime& runtime, image::ImageStore* images, PodApi& api,
            const nlohmann::json& pod, PodStartLimiter* start_limiter = nullptr);
  ~PodWorker();
  PodWorker(const PodWorker&) = delete;
  PodWorker& operator=(const PodWorker&) = delete;

  // A newer version of the pod object.
  void Update(const nlohmann::json& pod);
  // The pod object is gone from the API: stop and remove everything.
  void MarkDeleted();
  // Ends the thread and leaves the pod running (the kubelet is stopping).
  void Stop();
  // True once the pod was torn down (the worker may be destroyed).
  bool done() const;
  const std::string& uid() const { return uid_; }

 private:
  struct Slot;
  // How the pod's first start went, step by step: logged as one
  // "pod-startup {json}" line when the pod's Running status is posted (what
  // bench/pod_startup_bench reads).
  struct StartupTrace {
    int64_t seen_unix_ns = 0;  // the informer handed the pod to the kubelet
    int64_t patch_sent_unix_ns = 0;  // the last status patch was sent
    std::chrono::steady_clock::time_point seen;
    bool synced = false;
    bool started_container = false;
    runtime::StepTimings steps;
  };
  runtime::StepTimings* trace_steps() { return startup_trace_ ? &startup_trace_->steps : nullptr; }
  void FinishStartupTrace(const nlohmann::json& status);
  // True while the pod has something to start (sandbox, a container never created).
  bool NeedsStart() const;
  void Run();
  void SyncOnce(const nlohmann::json& pod);
  void Adopt(const nlohmann::json& pod);
  void RefreshStatuses();
  bool EnsureSandbox(const nlohmann::json& pod);
  bool EnsureVolumes(const nlohmann::json& pod);
  void StartContainer(const nlohmann::json& pod, Slot& slot);
  // The image pull step before creating a container; false leaves it waiting.
  bool EnsureImage(const nlohmann::json& pod, Slot& slot);
  // Restarts an exited container when its backoff allows.
  void RestartWithBackoff(const nlohmann::json& pod, Slot& slot);
  void RunProbes(const nlohmann::json& pod, Slot& slot);
  void Terminate(const nlohmann::json& pod, int64_t grace_seconds, bool delete_object);
  nlohmann::json BuildStatus(const nlohmann::json& pod);
  void PatchStatusIfChanged(const nlohmann::json& pod);
  PodEnvContext EnvContext() const;
  runtime::PodSandboxConfig SandboxConfig(const nlohmann::json& pod) const;

  const PodWorkerOptions options_;
  runtime::PodRuntime& runtime_;
  image::ImageStore* images_;
  PodApi& api_;
  PodStartLimiter* start_limiter_;
  std::string uid_, namespace_, name_;
  PodVolumes volumes_;

  // Worker thread state.
  bool adopted_ = false;
  std::string sandbox_id_;
  bool sandbox_stopped_ = false;
  std::string pod_ip_;
  std::string start_time_;
  std::string pod_error_;  // why the pod cannot start (sandbox, volumes, unsupported spec)
  std::map<std::string, std::string> volume_paths_;
  bool volumes_ready_ = false;
  std::chrono::steady_clock::time_point next_volume_refresh_{};
  bool init_failed_ = false;
  bool terminal_ = false;
  // The pod was already finished when this worker met it: its status is final.
  bool status_final_ = false;
  std::vector<std::unique_ptr<Slot>> init_slots_, app_slots_;
  std::optional<nlohmann::json> last_status_;
  std::unique_ptr<StartupTrace> startup_trace_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  nlohmann::json pod_;
  bool pod_changed_ = false;
  bool deleted_ = false;
  bool stop_ = false;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace kelpie::kubelet
