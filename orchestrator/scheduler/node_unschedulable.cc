// NodeUnschedulable: nodes with spec.unschedulable (cordoned) take no new
// pods, unless the pod tolerates node.kubernetes.io/unschedulable:NoSchedule.
#include "orchestrator/scheduler/plugins.h"

namespace kelpie::scheduler {
namespace {

class NodeUnschedulable final : public Plugin {
 public:
  std::string Name() const override { return "NodeUnschedulable"; }
  bool IsFilter() const override { return true; }
  PluginStatus Filter(const CycleState&, const PodInfo& pod, const NodeState& node) const override {
    if (!node.node->unschedulable) return {};
    static const Taint kTaint{"node.kubernetes.io/unschedulable", "", "NoSchedule"};
    if (Tolerates(pod.tolerations, kTaint)) return {};
    return PluginStatus::Unresolvable("node(s) were unschedulable");
  }
};

}  // namespace

std::unique_ptr<Plugin> NewNodeUnschedulable() { return std::make_unique<NodeUnschedulable>(); }

}  // namespace kelpie::scheduler
