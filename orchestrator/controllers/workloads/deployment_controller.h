// DeploymentController rolls a Deployment's pod template out through
// ReplicaSets, as Kubernetes' deployment controller does:
// - the new ReplicaSet is named <deployment>-<pod-template-hash>, its
//   selector and template carry the pod-template-hash label, and it gets the
//   next revision annotation (the deployment mirrors it); an older
//   ReplicaSet with the same template is reused, which is what makes
//   `kubectl rollout undo` (a client-side template patch) roll back;
// - RollingUpdate scales the new ReplicaSet up within maxSurge and old ones
//   down within maxUnavailable (unhealthy old pods first); Recreate scales
//   old ones to zero and waits for their pods to go before scaling up;
// - scaling during a rollout is proportional over active ReplicaSets;
// - paused deployments only scale; old ReplicaSets beyond
//   revisionHistoryLimit are deleted once the rollout completes;
// - status (replicas, updated, ready, available, unavailable,
//   observedGeneration, collisionCount) and the Available and Progressing
//   conditions with progressDeadlineSeconds, so `kubectl rollout status`
//   works; ScalingReplicaSet events.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "orchestrator/controllers/controller.h"
#include "orchestrator/controllers/workloads/controller_ref_manager.h"
#include "orchestrator/controllers/workloads/queue_worker.h"

namespace kelpie::controllers::workloads {

class DeploymentController : public Controller {
 public:
  explicit DeploymentController(ControllerContext& ctx);
  ~DeploymentController() override { Stop(); }

  std::string Name() const override { return "deployment"; }
  void Run(int workers) override { worker_.Run(workers); }
  void Stop() override { worker_.Stop(); }

  absl::Status Sync(const std::string& key);

 private:
  // The working state of one sync: the deployment as last written, its new
  // ReplicaSet (if any) and the old ones, updated in place after writes.
  struct Rollout {
    nlohmann::json d;
    std::optional<nlohmann::json> new_rs;
    std::vector<nlohmann::json> old_rss;
    std::vector<nlohmann::json*> All();
  };

  void OnReplicaSetAdd(const nlohmann::json& rs);
  void OnReplicaSetUpdate(const nlohmann::json& old_rs, const nlohmann::json& rs);
  void OnReplicaSetDelete(const nlohmann::json& rs);
  void OnPodDelete(const nlohmann::json& pod);
  std::string ResolveControllerRef(const std::string& ns, const nlohmann::json& ref) const;
  void EnqueueMatchingDeployments(const nlohmann::json& rs);

  absl::StatusOr<std::vector<nlohmann::json>> ClaimReplicaSets(const nlohmann::json& d);
  // Splits the claimed ReplicaSets into new and old, syncing the revision;
  // creates the new one when `create_new` and none matches the template.
  absl::Status SplitAndSyncRevision(Rollout& r, std::vector<nlohmann::json> rss, bool create_new);
  absl::Status CreateNewReplicaSet(Rollout& r);
  // Sets spec.replicas (and the replica annotations); records the event.
  absl::Status ScaleReplicaSet(Rollout& r, nlohmann::json& rs, int64_t new_scale);

  absl::Status ScaleOnly(Rollout& r);  // paused or a scaling event
  absl::Status Scale(Rollout& r);
  absl::Status RolloutRolling(Rollout& r);
  absl::Status RolloutRecreate(Rollout& r);
  absl::StatusOr<bool> ReconcileNewReplicaSet(Rollout& r);
  absl::StatusOr<bool> ReconcileOldReplicaSets(Rollout& r);
  bool OldPodsRunning(const Rollout& r) const;
  absl::Status CleanupOldReplicaSets(Rollout& r);
  bool IsScalingEvent(const Rollout& r) const;

  nlohmann::json CalculateStatus(const Rollout& r) const;
  absl::Status SyncRolloutStatus(Rollout& r);
  absl::Status CheckPausedConditions(Rollout& r);
  absl::Status WriteStatus(Rollout& r, const nlohmann::json& status);

  ControllerContext& ctx_;
  SharedInformer& deployments_;
  SharedInformer& replica_sets_;
  SharedInformer& pods_;
  ControllerRefManager replica_set_refs_;
  QueueWorker worker_;
};

}  // namespace kelpie::controllers::workloads
