// The pods bound to this node: an informer on pods with
// fieldSelector spec.nodeName=<node> and one PodWorker per pod uid. After
// a restart it adopts the sandboxes the runtime still has, and once the
// informer has synced it removes those whose pod is gone (deleted while
// the kubelet was down), with their volumes.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/shared_informer.h"
#include "orchestrator/kubelet/pod_api.h"
#include "orchestrator/kubelet/pod_worker.h"
#include "orchestrator/runtime/pod_runtime.h"

namespace kelpie::kubelet {

class PodManager {
 public:
  // `client`, `runtime` and `images` (may be null) must outlive the manager.
  PodManager(PodWorkerOptions options, client::RestClient& client, runtime::PodRuntime& runtime,
             image::ImageStore* images);
  ~PodManager();

  void Start();
  // Stops watching and every worker; pods keep running (a restarted kubelet adopts them).
  void Stop();

  // Pods with a worker (for tests and metrics).
  size_t WorkerCount() const;
  bool WaitForSync(std::chrono::milliseconds timeout) { return informer_.WaitForSync(timeout); }

 private:
  void OnPod(const nlohmann::json& pod);
  void OnDelete(const nlohmann::json& pod);
  void Housekeeping();
  void RemoveOrphans();

  PodWorkerOptions options_;
  runtime::PodRuntime& runtime_;
  image::ImageStore* images_;
  PodStartLimiter start_limiter_;
  RestPodApi api_;
  controllers::SharedInformer informer_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool orphans_removed_ = false;
  std::map<std::string, std::unique_ptr<PodWorker>> workers_;  // by pod uid
  std::thread housekeeping_;
};

}  // namespace kelpie::kubelet
