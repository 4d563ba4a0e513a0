// InterPodAffinity: required pod affinity and anti-affinity of the incoming
// pod, and the required anti-affinity of pods already placed, evaluated per
// topology domain (topologyKey); preferred terms (and existing pods' terms
// that match the incoming pod) score the node's domains.
#include <limits>
#include <map>
#include <utility>

#include "orchestrator/scheduler/plugins.h"

namespace kelpie::scheduler {
namespace {

using TopologyPair = std::pair<std::string, std::string>;
using PairCounts = std::map<TopologyPair, int64_t>;

struct FilterState : PluginState {
  // topologyKey -> values where existing pods' anti-affinity rejects the pod
  std::map<std::string, std::map<std::string, int64_t>> existing_anti_affinity;
  PairCounts affinity;                // domains holding pods that match all required affinity terms
  PairCounts anti_affinity;           // domains holding pods the incoming anti-affinity rejects
  bool self_matches_affinity = false;
};

struct ScoreState : PluginState {
  std::map<std::string, std::map<std::string, int64_t>> by_key;  // topologyKey -> value -> score
};

class InterPodAffinity final : public Plugin {
 public:
  std::string Name() const override { return "InterPodAffinity"; }
  bool IsFilter() const override { return true; }

  PluginStatus PreFilter(CycleState& cycle, const PodInfo& pod, const ClusterView& view) const override {
    auto state = std::make_unique<FilterState>();
    bool incoming = !pod.required_affinity.empty() || !pod.required_anti_affinity.empty();
    for (const NodeState* node : view.nodes) {
      if (!incoming && node->pods_with_required_anti_affinity == 0) continue;
      const Labels& labels = node->node->labels;
      for (const auto& existing : node->pods) {
        // Existing pods' required anti-affinity against the incoming pod.
        for (const auto& term : existing->required_anti_affinity) {
          auto label = labels.find(term.topology_key);
          if (label == labels.end()) continue;
          if (AffinityTermMatches(term, existing->namespace_name, pod, view.cache)) {
            ++state->existing_anti_affinity[term.topology_key][label->second];
          }
        }
        if (!incoming) continue;
        if (!pod.required_affinity.empty()) {
          bool all = true;
          for (const auto& term : pod.required_affinity) {
            if (!AffinityTermMatches(term, pod.namespace_name, *existing, view.cache)) {
              all = false;
              break;
            }
          }
          if (all) {
            for (const auto& term : pod.required_affinity) {
              auto label = labels.find(term.topology_key);
              if (label != labels.end()) ++state->affinity[{term.topology_key, label->second}];
            }
          }
        }
        for (const auto& term : pod.required_anti_affinity) {
          auto label = labels.find(term.topology_key);
          if (label == labels.end()) continue;
          if (AffinityTermMatches(term, pod.namespace_name, *existing, view.cache)) {
            ++state->anti_affinity[{term.topology_key, label->second}];
          }
        }
      }
    }
    state->self_matches_affinity = true;
    for (const auto& term : pod.required_affinity) {
      if (!AffinityTermMatches(term, pod.namespace_name, pod, view.cache)) state->self_matches_affinity = false;
    }
    cycle.Write(Name(), std::move(state));
    return {};
  }

  PluginStatus Filter(const CycleState& cycle, const PodInfo& pod, const NodeState& node) const override {
    const auto* state = cycle.Read<FilterState>(Name());
    if (!state) return {};
    const Labels& labels = node.node->labels;
    if (!pod.required_affinity.empty()) {
      bool satisfied = true;
      for (const auto& term : pod.required_affinity) {
        auto label = labels.find(term.topology_key);
        if (label == labels.end() || !state->affinity.count({term.topology_key, label->second})) {
          satisfied = false;
          break;
        }
      }
      // The first pod of a group that selects itself may go anywhere its
      // topology keys exist.
      if (!satisfied && state->affinity.empty() && state->self_matches_affinity) {
        satisfied = true;
        for (const auto& term : pod.required_affinity) {
          if (!labels.count(term.topology_key)) satisfied = false;
        }
      }
      if (!satisfied) return PluginStatus::Unresolvable("node(s) didn't match pod affinity rules");
    }
    for (const auto& term : pod.required_anti_affinity) {
      auto label = labels.find(term.topology_key);
      if (label != labels.end() && state->anti_affinity.count({term.topology_key, label->second})) {
        return PluginStatus::Unschedulable("node(s) didn't match pod anti-affinity rules");
      }
    }
    for (const auto& [key, values] : state->existing_anti_affinity) {
      auto label = labels.find(key);
      if (label != labels.end() && values.count(label->second)) {
        return PluginStatus::Unschedulable("node(s) didn't satisfy existing pods anti-affinity rules");
      }
    }
    return {};
  }

  bool IsScore() const override { return true; }
  void PreScore(CycleState& cycle, const PodInfo& pod, const ClusterView& view,
                const std::vector<const NodeState*>&) const override {
    auto state = std::make_unique<ScoreState>();
    bool incoming = !pod.preferred_affinity.empty() || !pod.preferred_anti_affinity.empty();
    auto add = [&](const Labels& labels, const std::string& key, int64_t weight) {
      auto label = labels.find(key);
      if (label != labels.end() && weight != 0) state->by_key[key][label->second] += weight;
    };
    for (const NodeState* node : view.nodes) {
      if (!incoming && node->pods_with_affinity == 0) continue;
      const Labels& labels = node->node->labels;
      for (const auto& existing : node->pods) {
        for (const auto& w : pod.preferred_affinity) {
          if (AffinityTermMatches(w.term, pod.namespace_name, *existing, view.cache)) add(labels, w.term.topology_key, w.weight);
        }
        for (const auto& w : pod.preferred_anti_affinity) {
          if (AffinityTermMatches(w.term, pod.namespace_name, *existing, view.cache)) add(labels, w.term.topology_key, -w.weight);
        }
        // Existing pods' terms that select the incoming pod (required
        // affinity with kube-scheduler's hardPodAffinityWeight of 1).
        for (const auto& term : existing->required_affinity) {
          if (AffinityTermMatches(term, existing->namespace_name, pod, view.cache)) add(labels, term.topology_key, 1);
        }
        for (const auto& w : existing->preferred_affinity) {
          if (AffinityTermMatches(w.term, existing->namespace_name, pod, view.cache)) add(labels, w.term.topology_key, w.weight);
        }
        for (const auto& w : existing->preferred_anti_affinity) {
          if (AffinityTermMatches(w.term, existing->namespace_name, pod, view.cache)) add(labels, w.term.topology_key, -w.weight);
        }
      }
    }
    if (!state->by_key.empty()) cycle.Write(Name() + "/score", std::move(state));
  }

  int64_t Score(const CycleState& cycle, const PodInfo&, const NodeState& node) const override {
    const auto* state = cycle.Read<ScoreState>(Name() + "/score");
    if (!state) return 0;
    int64_t score = 0;
    for (const auto& [key, values] : state->by_key) {
      auto label = node.node->labels.find(key);
      if (label == node.node->labels.end()) continue;
      auto it = values.find(label->second);
      if (it != values.end()) score += it->second;
    }
    return score;
  }

  void NormalizeScore(const CycleState& cycle, const PodInfo&, std::vector<int64_t>& scores) const override {
    if (!cycle.Read<ScoreState>(Name() + "/score")) return;
    int64_t min = std::numeric_limits<int64_t>::max();
    int64_t max = std::numeric_limits<int64_t>::min();
    for (int64_t s : scores) {
      min = std::min(min, s);
      max = std::max(max, s);
    }
    int64_t diff = max - min;
    for (auto& s : scores) {
      s = diff > 0 ? static_cast<int64_t>(static_cast<double>(kMaxNodeScore) * static_cast<double>(s - min) /
                                          static_cast<double>(diff))
                   : 0;
    }
  }
};

}  // namespace

std::unique_ptr<Plugin> NewInterPodAffinity() { return std::make_unique<InterPodAffinity>(); }

}  // namespace kelpie::scheduler
