// NodePorts: a pod's hostPorts must not collide with those already taken on
// the node (same protocol and port, and overlapping host addresses).
#include "orchestrator/scheduler/plugins.h"

namespace kelpie::scheduler {
namespace {

class NodePorts final : public Plugin {
 public:
  std::string Name() const override { return "NodePorts"; }
  bool IsFilter() const override { return true; }
  PluginStatus Filter(const CycleState&, const PodInfo& pod, const NodeState& node) const override {
    for (const auto& want : pod.host_ports) {
      for (const auto& used : node.used_ports) {
        if (HostPortsConflict(want, used)) {
          return PluginStatus::Unschedulable("node(s) didn't have free ports for the requested pod ports");
        }
      }
    }
    return {};
  }
};

}  // namespace

std::unique_ptr<Plugin> NewNodePorts() { return std::make_unique<NodePorts>(); }

}  // namespace kelpie::scheduler
