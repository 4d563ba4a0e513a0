// NodeAffinity: spec.nodeSelector and required node affinity must both match
// the node's labels (and metadata.name for matchFields); preferred terms add
// their weights to the score, normalized so the best node gets 100.
#include "orchestrator/scheduler/plugins.h"

namespace kelpie::scheduler {
namespace {

class NodeAffinity final : public Plugin {
 public:
  std::string Name() const override { return "NodeAffinity"; }
  bool IsFilter() const override { return true; }
  PluginStatus Filter(const CycleState&, const PodInfo& pod, const NodeState& node) const override {
    if (!Matches(pod, *node.node)) return PluginStatus::Unresolvable("node(s) didn't match Pod's node affinity/selector");
    return {};
  }
  static bool Matches(const PodInfo& pod, const NodeInfo& node) {
    for (const auto& [k, v] : pod.node_selector) {
      auto it = node.labels.find(k);
      if (it == node.labels.end() || it->second != v) return false;
    }
    return !pod.required_node_affinity || pod.required_node_affinity->Matches(node.name, node.labels);
  }

  bool IsScore() const override { return true; }
  int64_t Score(const CycleState&, const PodInfo& pod, const NodeState& node) const override {
    int64_t score = 0;
    for (const auto& term : pod.preferred_node_affinity) {
      if (term.weight != 0 && term.preference.Matches(node.name(), node.node->labels)) score += term.weight;
    }
    return score;
  }
  void NormalizeScore(const CycleState&, const PodInfo&, std::vector<int64_t>& scores) const override {
    DefaultNormalizeScore(scores, /*reverse=*/false);
  }
};

}  // namespace

std::unique_ptr<Plugin> NewNodeAffinity() { return std::make_unique<NodeAffinity>(); }

bool PodMatchesNodeSelectorAndAffinity(const PodInfo& pod, const NodeInfo& node) {
  return NodeAffinity::Matches(pod, node);
}

}  // namespace kelpie::scheduler
