// TaintToleration: NoSchedule and NoExecute taints the pod does not tolerate
// rule the node out; untolerated PreferNoSchedule taints lower its score
// (fewer is better, normalized in reverse).
#include "absl/strings/str_cat.h"
#include "orchestrator/scheduler/plugins.h"

namespace kelpie::scheduler {
namespace {

class TaintToleration final : public Plugin {
 public:
  std::string Name() const override { return "TaintToleration"; }
  bool IsFilter() const override { return true; }
  PluginStatus Filter(const CycleState&, const PodInfo& pod, const NodeState& node) const override {
    for (const auto& taint : node.node->taints) {
      if (taint.effect != "NoSchedule" && taint.effect != "NoExecute") continue;
      if (Tolerates(pod.tolerations, taint)) continue;
      return PluginStatus::Unresolvable(absl::StrCat("node(s) had untolerated taint {", taint.key, ": ", taint.value, "}"));
    }
    return {};
  }

  bool IsScore() const override { return true; }
  int64_t Score(const CycleState&, const PodInfo& pod, const NodeState& node) const override {
    // Only tolerations that apply to PreferNoSchedule count here.
    int64_t intolerable = 0;
    for (const auto& taint : node.node->taints) {
      if (taint.effect != "PreferNoSchedule") continue;
      bool tolerated = false;
      for (const auto& t : pod.tolerations) {
        if (!t.effect.empty() && t.effect != "PreferNoSchedule") continue;
        if (Tolerates({t}, taint)) {
          tolerated = true;
          break;
        }
      }
      if (!tolerated) ++intolerable;
    }
    return intolerable;
  }
  void NormalizeScore(const CycleState&, const PodInfo&, std::vector<int64_t>& scores) const override {
    DefaultNormalizeScore(scores, /*reverse=*/true);
  }
};

}  // namespace

std::unique_ptr<Plugin> NewTaintToleration() { return std::make_unique<TaintToleration>(); }

}  // namespace kelpie::scheduler
