// ReplicaSetController keeps spec.replicas pods of a ReplicaSet's template
// running, as Kubernetes' replicaset controller does: pods are claimed by
// label selector (orphans adopted with a controller ownerReference, owned
// pods whose labels stopped matching released), missing pods are created in
// slow-start batches (1, 2, 4, ...), extra pods are deleted in Kubernetes'
// ranking order, and expectations keep it from acting on a stale cache, so
// it never creates or deletes more than needed. Status: replicas,
// fullyLabeledReplicas, readyReplicas, availableReplicas (minReadySeconds),
// observedGeneration and a ReplicaFailure condition when creates fail.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "orchestrator/controllers/controller.h"
#include "orchestrator/controllers/workloads/controller_expectations.h"
#include "orchestrator/controllers/workloads/controller_ref_manager.h"
#include "orchestrator/controllers/workloads/queue_worker.h"

namespace kelpie::controllers::workloads {

// At most this many creates or deletes per sync (Kubernetes' burstReplicas).
inline constexpr int kBurstReplicas = 500;

class ReplicaSetController : public Controller {
 public:
  explicit ReplicaSetController(ControllerContext& ctx);
  ~ReplicaSetController() override { Stop(); }

  std::string Name() const override { return "replicaset"; }
  void Run(int workers) override { worker_.Run(workers); }
  void Stop() override { worker_.Stop(); }

  absl::Status Sync(const std::string& key);

 private:
  void OnPodAdd(const nlohmann::json& pod);
  void OnPodUpdate(const nlohmann::json& old_pod, const nlohmann::json& pod);
  void OnPodDelete(const nlohmann::json& pod);
  // The key of the ReplicaSet the reference points to, if it is one we know.
  std::string ResolveControllerRef(const std::string& ns, const nlohmann::json& ref) const;
  void EnqueueMatchingReplicaSets(const nlohmann::json& pod);

  // The pods of `rs` after adoption and release.
  absl::StatusOr<std::vector<nlohmann::json>> ClaimPods(const nlohmann::json& rs);
  absl::Status ManageReplicas(const std::string& key, const nlohmann::json& rs,
                              const std::vector<nlohmann::json>& active);
  absl::Status UpdateStatus(const nlohmann::json& rs, const nlohmann::json& status);

  ControllerContext& ctx_;
  SharedInformer& pods_;
  SharedInformer& replica_sets_;
  ControllerRefManager pod_refs_;
  ControllerExpectations expectations_;
  QueueWorker worker_;
};

}  // namespace kelpie::controllers::workloads
