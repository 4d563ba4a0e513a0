// NodeName: a pod that names a node in spec.nodeName fits only that node
// (pods arriving here have no nodeName; kept for profiles that schedule
// such pods and for parity with kube-scheduler's filter list).
#include "orchestrator/scheduler/plugins.h"

namespace kelpie::scheduler {
namespace {

class NodeName final : public Plugin {
 public:
  std::string Name() const override { return "NodeName"; }
  bool IsFilter() const override { return true; }
  PluginStatus Filter(const CycleState&, const PodInfo& pod, const NodeState& node) const override {
    if (pod.node_name.empty() || pod.node_name == node.name()) return {};
    return PluginStatus::Unresolvable("node(s) didn't match the requested node name");
  }
};

}  // namespace

std::unique_ptr<Plugin> NewNodeName() { return std::make_unique<NodeName>(); }

}  // namespace kelpie::scheduler
