// JobController runs a batch/v1 Job's pods to completion, as Kubernetes'
// job controller does (non-indexed completion mode):
// - up to spec.parallelism (default 1) pods at once, never more than the
//   completions still needed; without spec.completions the Job is done when
//   one pod succeeded and none is active;
// - failed pods count against spec.backoffLimit (default 6); replacements
//   after a failure wait an exponential back-off (10 s doubling, at most
//   6 min); beyond the limit the Job fails (BackoffLimitExceeded) and its
//   active pods are deleted; so it does after spec.activeDeadlineSeconds
//   (DeadlineExceeded);
// - status: startTime, active, ready, succeeded, failed, completionTime and
//   the Complete / Failed conditions; events as Kubernetes records them;
// - spec.ttlSecondsAfterFinished: a finished Job is deleted (foreground, so
//   its pods go first) that long after it finished.
// Pods carry the job-name and controller-uid labels and a controller
// ownerReference; expectations keep it from creating too many.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "orchestrator/controllers/controller.h"
#include "orchestrator/controllers/workloads/controller_expectations.h"
#include "orchestrator/controllers/workloads/controller_ref_manager.h"
#include "orchestrator/controllers/workloads/queue_worker.h"

namespace kelpie::controllers::workloads {

// Delay before a Job creates pods again after `failures` failed pods
// (Kubernetes: 10 s * 2^(failures-1), at most 6 minutes; 0 for none).
std::chrono::seconds JobBackoff(int64_t failures);

class JobController : public Controller {
 public:
  explicit JobController(ControllerContext& ctx);
  ~JobController() override { Stop(); }

  std::string Name() const override { return "job"; }
  void Run(int workers) override { worker_.Run(workers); }
  void Stop() override { worker_.Stop(); }

  absl::Status Sync(const std::string& key);

 private:
  std::string JobKeyOf(const nlohmann::json& pod) const;
  // The Job's pods after adoption and release (ControllerRefManager).
  absl::StatusOr<std::vector<nlohmann::json>> ClaimPods(const nlohmann::json& job);
  void OnPod(const nlohmann::json& pod, bool deleted, bool added);
  absl::Status DeletePods(const std::string& key, const nlohmann::json& job, const std::vector<nlohmann::json>& pods);
  absl::Status SyncFinished(const std::string& key, const nlohmann::json& job);

  ControllerContext& ctx_;
  SharedInformer& jobs_;
  SharedInformer& pods_;
  ControllerRefManager pod_refs_;
  ControllerExpectations expectations_;
  QueueWorker worker_;
};

}  // namespace kelpie::controllers::workloads
