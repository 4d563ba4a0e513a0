// DaemonSetController runs one pod of a DaemonSet on every eligible node, as
// Kubernetes' daemon controller does:
// - a node is eligible when it matches the template's nodeSelector and the
//   pod tolerates the node's NoSchedule/NoExecute taints (with the
//   tolerations Kubernetes adds to every daemon pod: not-ready,
//   unreachable, disk/memory/pid-pressure, unschedulable, and
//   network-unavailable for host-network pods);
// - the pod is pinned to its node by a required nodeAffinity term on
//   metadata.name (the scheduler binds it), not by spec.nodeName;
// - pods on ineligible or vanished nodes, surplus pods and failed pods are
//   deleted; nodes joining get a pod;
// - RollingUpdate (maxUnavailable, default 1) replaces pods whose
//   controller-revision-hash label differs from the template's hash, never
//   more unavailable at once; OnDelete replaces only pods deleted by users;
// - status: desired/current/misscheduled/ready/available/unavailable/
//   updated numbers and observedGeneration, for `kubectl rollout status`.
// Revisions are the template hash label; ControllerRevision objects are not
// written (the API has no such resource here), so `kubectl rollout undo
// daemonset` is not supported.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "orchestrator/controllers/controller.h"
#include "orchestrator/controllers/workloads/controller_expectations.h"
#include "orchestrator/controllers/workloads/queue_worker.h"

namespace kelpie::controllers::workloads {

// Whether a pod with `tolerations` may run on a node with `taints`
// (NoSchedule and NoExecute taints must be tolerated; PreferNoSchedule
// need not).
bool ToleratesTaints(const nlohmann::json& tolerations, const nlohmann::json& taints);
// The tolerations Kubernetes adds to daemon pods.
nlohmann::json WithDaemonTolerations(nlohmann::json tolerations, bool host_network);
// Pins a pod spec to `node` by nodeAffinity on metadata.name.
void PinToNode(nlohmann::json& pod_spec, const std::string& node);
// The node a daemon pod is for: its nodeName, else its pinned node.
std::string DaemonPodNode(const nlohmann::json& pod);

class DaemonSetController : public Controller {
 public:
  explicit DaemonSetController(ControllerContext& ctx);
  ~DaemonSetController() override { Stop(); }

  std::string Name() const override { return "daemonset"; }
  void Run(int workers) override { worker_.Run(workers); }
  void Stop() override { worker_.Stop(); }

  absl::Status Sync(const std::string& key);

 private:
  std::string KeyOf(const nlohmann::json& pod) const;
  void EnqueueAll();

  ControllerContext& ctx_;
  SharedInformer& daemon_sets_;
  SharedInformer& nodes_;
  SharedInformer& pods_;
  ControllerExpectations expectations_;
  QueueWorker worker_;
};

}  // namespace kelpie::controllers::workloads
