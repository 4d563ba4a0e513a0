// NodeResourcesBalancedAllocation: prefers nodes where cpu and memory would
// be used in equal fractions after placing the pod: score = (1 - std) * 100
// of the per-resource requested/allocatable fractions (capped at 1).
#include <cmath>

#include "orchestrator/scheduler/plugins.h"

namespace kelpie::scheduler {
namespace {

class BalancedAllocation final : public Plugin {
 public:
  std::string Name() const override { return "NodeResourcesBalancedAllocation"; }
  bool IsScore() const override { return true; }
  int64_t Score(const CycleState&, const PodInfo& pod, const NodeState& node) const override {
    // Best-effort pods (no requests) are skipped, as kube-scheduler does.
    if (pod.requests.milli_cpu == 0 && pod.requests.memory == 0) return 0;
    std::vector<double> fractions;
    auto add = [&](int64_t requested, int64_t capacity) {
      if (capacity == 0) return;
      fractions.push_back(std::min(1.0, static_cast<double>(requested) / static_cast<double>(capacity)));
    };
    add(node.requested.milli_cpu + pod.requests.milli_cpu, node.node->allocatable.milli_cpu);
    add(node.requested.memory + pod.requests.memory, node.node->allocatable.memory);
    double std_dev = 0;
    if (fractions.size() == 2) std_dev = std::fabs((fractions[0] - fractions[1]) / 2);
    return static_cast<int64_t>((1 - std_dev) * static_cast<double>(kMaxNodeScore));
  }
};

}  // namespace

std::unique_ptr<Plugin> NewBalancedAllocation() { return std::make_unique<BalancedAllocation>(); }

}  // namespace kelpie::scheduler
