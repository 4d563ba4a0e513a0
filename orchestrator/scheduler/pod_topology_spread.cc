// PodTopologySpread: keeps the number of matching pods per topology domain
// within maxSkew of the least loaded eligible domain.
//  - Filter (whenUnsatisfiable: DoNotSchedule): counts matching pods per
//    domain over the nodes the constraint's inclusion policies admit
//    (nodeAffinityPolicy Honor, nodeTaintsPolicy Ignore by default) and
//    rejects nodes where placing the pod would exceed maxSkew.
//  - Score (ScheduleAnyway, or kube-scheduler's default constraints — zone
//    maxSkew 5, hostname maxSkew 3 — over the selectors of the Services and
//    controllers selecting the pod): fewer matching pods in the node's
//    domains is better, each constraint weighted by log(domains + 2).
#include <cmath>
#include <limits>
#include <unordered_map>

#include "orchestrator/scheduler/plugins.h"

namespace kelpie::scheduler {
namespace {

constexpr char kHostname[] = "kubernetes.io/hostname";
constexpr char kZone[] = "topology.kubernetes.io/zone";

bool HasAllKeys(const Labels& labels, const std::vector<TopologySpreadConstraint>& constraints) {
  for (const auto& c : constraints) {
    if (!labels.count(c.topology_key)) return false;
  }
  return true;
}

bool ToleratesNoScheduleTaints(const PodInfo& pod, const NodeInfo& node) {
  for (const auto& t : node.taints) {
    if ((t.effect == "NoSchedule" || t.effect == "NoExecute") && !Tolerates(pod.tolerations, t)) return false;
  }
  return true;
}

bool NodeIncluded(const TopologySpreadConstraint& c, const PodInfo& pod, const NodeInfo& node) {
  if (c.honor_node_affinity && !PodMatchesNodeSelectorAndAffinity(pod, node)) return false;
  if (c.honor_node_taints && !ToleratesNoScheduleTaints(pod, node)) return false;
  return true;
}

int64_t CountMatching(const NodeState& node, const LabelSelector& selector, const std::string& ns) {
  int64_t n = 0;
  for (const auto& p : node.pods) {
    if (p->terminating || p->namespace_name != ns) continue;
    if (selector.Matches(p->labels)) ++n;
  }
  return n;
}

struct FilterState : PluginState {
  std::vector<TopologySpreadConstraint> constraints;
  std::vector<std::unordered_map<std::string, int64_t>> counts;  // per constraint: domain -> matching pods
  std::vector<int64_t> min_counts;
};

struct ScoreState : PluginState {
  std::vector<TopologySpreadConstraint> constraints;
  std::vector<std::unordered_map<std::string, int64_t>> counts;  // non-hostname constraints
  std::vector<double> weights;
  std::unordered_map<std::string, bool> ignored;  // nodes missing a required key
};

class PodTopologySpread final : public Plugin {
 public:
  explicit PodTopologySpread(bool default_constraints) : default_constraints_(default_constraints) {}
  std::string Name() const override { return "PodTopologySpread"; }
  bool IsFilter() const override { return true; }

  PluginStatus PreFilter(CycleState& cycle, const PodInfo& pod, const ClusterView& view) const override {
    auto state = std::make_unique<FilterState>();
    for (const auto& c : pod.spread_constraints) {
      if (c.do_not_schedule) state->constraints.push_back(c);
    }
    if (state->constraints.empty()) return {};
    state->counts.resize(state->constraints.size());
    for (const NodeState* node : view.nodes) {
      const NodeInfo& info = *node->node;
      if (!HasAllKeys(info.labels, state->constraints)) continue;
      for (size_t i = 0; i < state->constraints.size(); ++i) {
        const auto& c = state->constraints[i];
        if (!NodeIncluded(c, pod, info)) continue;
        state->counts[i][info.labels.at(c.topology_key)] += CountMatching(*node, c.selector, pod.namespace_name);
      }
    }
    for (size_t i = 0; i < state->constraints.size(); ++i) {
      int64_t min = std::numeric_limits<int64_t>::max();
      for (const auto& [domain, count] : state->counts[i]) min = std::min(min, count);
      // Fewer eligible domains than minDomains: the global minimum counts as 0.
      if (state->counts[i].empty() ||
          static_cast<int64_t>(state->counts[i].size()) < state->constraints[i].min_domains) {
        min = 0;
      }
      state->min_counts.push_back(min);
    }
    cycle.Write(Name(), std::move(state));
    return {};
  }

  PluginStatus Filter(const CycleState& cycle, const PodInfo& pod, const NodeState& node) const override {
    const auto* state = cycle.Read<FilterState>(Name());
    if (!state) return {};
    for (size_t i = 0; i < state->constraints.size(); ++i) {
      const auto& c = state->constraints[i];
      auto label = node.node->labels.find(c.topology_key);
      if (label == node.node->labels.end()) {
        return PluginStatus::Unresolvable("node(s) didn't match pod topology spread constraints (missing required label)");
      }
      int64_t self = c.selector.Matches(pod.labels) ? 1 : 0;
      auto it = state->counts[i].find(label->second);
      int64_t matching = it == state->counts[i].end() ? 0 : it->second;
      if (matching + self - state->min_counts[i] > c.max_skew) {
        return PluginStatus::Unschedulable("node(s) didn't match pod topology spread constraints");
      }
    }
    return {};
  }

  bool IsScore() const override { return true; }
  void PreScore(CycleState& cycle, const PodInfo& pod, const ClusterView& view,
                const std::vector<const NodeState*>& feasible) const override {
    auto state = std::make_unique<ScoreState>();
    bool system_defaulted = false;
    if (pod.spread_constraints.empty()) {
      if (!default_constraints_) return;
      auto selector = view.cache.DefaultSpreadSelector(pod);
      if (!selector) return;
      TopologySpreadConstraint zone;
      zone.max_skew = 5;
      zone.topology_key = kZone;
      zone.do_not_schedule = false;
      zone.selector = *selector;
      TopologySpreadConstraint host = zone;
      host.max_skew = 3;
      host.topology_key = kHostname;
      state->constraints = {host, zone};
      system_defaulted = true;
    } else {
      for (const auto& c : pod.spread_constraints) {
        if (!c.do_not_schedule) state->constraints.push_back(c);
      }
    }
    if (state->constraints.empty()) return;
    size_t n = state->constraints.size();
    state->counts.resize(n);
    std::vector<int64_t> domains(n, 0);
    size_t considered = 0;
    for (const NodeState* node : feasible) {
      const Labels& labels = node->node->labels;
      if (!system_defaulted && !HasAllKeys(labels, state->constraints)) {
        state->ignored[node->name()] = true;
        continue;
      }
      ++considered;
      for (size_t i = 0; i < n; ++i) {
        const auto& c = state->constraints[i];
        if (c.topology_key == kHostname) continue;
        auto label = labels.find(c.topology_key);
        if (label == labels.end()) continue;
        if (state->counts[i].emplace(label->second, 0).second) ++domains[i];
      }
    }
    for (size_t i = 0; i < n; ++i) {
      double size = state->constraints[i].topology_key == kHostname ? static_cast<double>(considered)
                                                                    : static_cast<double>(domains[i]);
      state->weights.push_back(std::log(size + 2));
    }
    for (const NodeState* node : view.nodes) {
      const Labels& labels = node->node->labels;
      if (!system_defaulted && !HasAllKeys(labels, state->constraints)) continue;
      for (size_t i = 0; i < n; ++i) {
        const auto& c = state->constraints[i];
        if (c.topology_key == kHostname || !NodeIncluded(c, pod, *node->node)) continue;
        auto label = labels.find(c.topology_key);
        if (label == labels.end()) continue;
        auto it = state->counts[i].find(label->second);
        if (it == state->counts[i].end()) continue;
        it->second += CountMatching(*node, c.selector, pod.namespace_name);
      }
    }
    cycle.Write(ScoreKey(), std::move(state));
  }

  int64_t Score(const CycleState& cycle, const PodInfo& pod, const NodeState& node) const override {
    const auto* state = cycle.Read<ScoreState>(ScoreKey());
    if (!state) return 0;
    if (state->ignored.count(node.name())) return kIgnored;
    double score = 0;
    for (size_t i = 0; i < state->constraints.size(); ++i) {
      const auto& c = state->constraints[i];
      auto label = node.node->labels.find(c.topology_key);
      if (label == node.node->labels.end()) continue;
      int64_t count = 0;
      if (c.topology_key == kHostname) {
        count = CountMatching(node, c.selector, pod.namespace_name);
      } else {
        auto it = state->counts[i].find(label->second);
        count = it == state->counts[i].end() ? 0 : it->second;
      }
      score += static_cast<double>(count) * state->weights[i] + static_cast<double>(c.max_skew - 1);
    }
    return static_cast<int64_t>(std::round(score));
  }

  // Needs to know which nodes were ignored: those get 0, the others are
  // inverted so that the emptiest domain gets 100.
  void NormalizeScore(const CycleState& cycle, const PodInfo&, std::vector<int64_t>& scores) const override {
    const auto* state = cycle.Read<ScoreState>(ScoreKey());
    if (!state) return;
    int64_t min = std::numeric_limits<int64_t>::max();
    int64_t max = 0;
    for (int64_t s : scores) {
      if (s < 0) continue;
      min = std::min(min, s);
      max = std::max(max, s);
    }
    for (auto& s : scores) {
      if (s < 0) {
        s = 0;
      } else if (max == 0) {
        s = kMaxNodeScore;
      } else {
        s = kMaxNodeScore * (max + min - s) / max;
      }
    }
  }

  // Ignored nodes are marked with a negative raw score for NormalizeScore.
  static constexpr int64_t kIgnored = -1;

 private:
  static std::string ScoreKey() { return "PodTopologySpread/score"; }
  bool default_constraints_;
};

}  // namespace

std::unique_ptr<Plugin> NewPodTopologySpread(bool default_constraints) {
  return std::make_unique<PodTopologySpread>(default_constraints);
}

}  // namespace kelpie::scheduler
