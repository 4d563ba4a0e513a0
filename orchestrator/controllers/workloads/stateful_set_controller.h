// StatefulSetController runs StatefulSets as Kubernetes' statefulset
// controller does: pods with stable names `<set>-<ordinal>` (identity
// labels, hostname, subdomain = serviceName), created in ordinal order and
// each only after its predecessors are Running and Ready (OrderedReady) or
// all at once (Parallel), removed highest ordinal first; template changes
// become ControllerRevision objects, and RollingUpdate replaces pods from
// the highest ordinal down to the partition, at most maxUnavailable at a
// time (OnDelete: only pods deleted by others). The plan of each sync is
// PlanStatefulSetSync (stateful_set_util.h); this class reads the caches,
// claims pods and revisions (ControllerRefManager), keeps the revision
// history and writes pods, revisions, events and status.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "orchestrator/controllers/controller.h"
#include "orchestrator/controllers/workloads/controller_ref_manager.h"
#include "orchestrator/controllers/workloads/queue_worker.h"
#include "orchestrator/controllers/workloads/stateful_set_util.h"

namespace kelpie::controllers::workloads {

class StatefulSetController : public Controller {
 public:
  explicit StatefulSetController(ControllerContext& ctx);
  ~StatefulSetController() override { Stop(); }

  std::string Name() const override { return "statefulset"; }
  void Run(int workers) override { worker_.Run(workers); }
  void Stop() override { worker_.Stop(); }

  absl::Status Sync(const std::string& key);

 private:
  void OnPodAdd(const nlohmann::json& pod);
  void OnPodUpdate(const nlohmann::json& old_pod, const nlohmann::json& pod);
  void OnPodDelete(const nlohmann::json& pod);
  // The key of the StatefulSet the reference points to, if it is one we know.
  std::string ResolveControllerRef(const std::string& ns, const nlohmann::json& ref) const;
  void EnqueueSelectingSets(const nlohmann::json& pod);

  // Current and update revisions (creating the update revision, or moving
  // an equal old one to the top on a rollback); `collision_count` may grow.
  absl::StatusOr<StatefulSetRevisions> Revisions(const nlohmann::json& set, std::vector<nlohmann::json>& revisions,
                                                 int32_t& collision_count);
  // Carries out `actions` in order until one fails; returns the counts
  // adjusted by the successful ones and the first error.
  absl::Status Execute(const nlohmann::json& set, const std::vector<StatefulSetAction>& actions,
                       StatefulSetCounts& counts);
  absl::Status ExecuteOne(const nlohmann::json& set, const StatefulSetAction& action);
  absl::Status TruncateHistory(const nlohmann::json& set, const std::vector<nlohmann::json>& pods,
                               const std::vector<nlohmann::json>& revisions, const StatefulSetRevisions& live);

  ControllerContext& ctx_;
  SharedInformer& sets_;
  SharedInformer& pods_;
  SharedInformer& revisions_;
  ControllerRefManager pod_refs_;
  ControllerRefManager revision_refs_;
  QueueWorker worker_;
};

}  // namespace kelpie::controllers::workloads
