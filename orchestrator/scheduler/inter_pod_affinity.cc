// InterPodAffinity: required pod affinity and anti-affinity of the incoming
// pod, and the required anti-affinity of pods already placed, evaluated per
// topology domain (topologyKey); preferred terms (and existing pods' terms
// that match the incoming pod) score the node's domains.
#include <limits>
#include <map>
#include <memory>
#include <unordered_map>
#include <utility>

#include "orchestrator/scheduler/plugins.h"

namespace kelpie::scheduler {
namespace {

// Domains (values of one topology key) holding pods that match a term:
// from the cache's incremental index when the term selects pods of the
// incoming pod's own namespace, otherwise counted by scanning.
struct TermDomains {
  std::shared_ptr<const DomainCountIndex> index;
  std::unordered_map<std::string, int64_t> owned;

  const std::unordered_map<std::string, int64_t>& map() const { return index ? index->by_domain : owned; }
  bool Has(const std::string& value) const {
    const auto& m = map();
    auto it = m.find(value);
    return it != m.end() && it->second > 0;
  }
  bool Empty() const { return map().empty(); }
};

struct FilterState : PluginState {
  // topologyKey -> values where existing pods' anti-affinity rejects the pod
  std::unordered_map<std::string, std::unordered_map<std::string, int64_t>> existing_anti_affinity;
  std::vector<TermDomains> affinity;       // per required affinity term: domains holding pods matching all terms
  std::vector<TermDomains> anti_affinity;  // per required anti-affinity term
  bool self_matches_affinity = false;
};

// Whether a term selects pods of `ns` only (no namespaceSelector): then the
// cache's per-namespace count index answers it.
bool OwnNamespaceOnly(const PodAffinityTerm& term, const std::string& ns) {
  if (term.namespace_selector) return false;
  return term.namespaces.empty() || (term.namespaces.size() == 1 && term.namespaces.front() == ns);
}

struct ScoreState : PluginState {
  std::map<std::string, std::map<std::string, int64_t>> by_key;  // topologyKey -> value -> score
};

class InterPodAffinity final : public Plugin {
 public:
  std::string Name() const override { return "InterPodAffinity"; }
  bool IsFilter() const override { return true; }

  PluginStatus PreFilter(CycleState& cycle, const PodInfo& pod, const ClusterView& view) const override {
    auto state = std::make_unique<FilterState>();
    // Existing pods' required anti-affinity against the incoming pod: each
    // distinct term once, then the domains of the nodes holding its pods.
    for (const auto& [sig, group] : view.cache.RequiredAntiAffinityGroups()) {
      if (!AffinityTermMatches(group.term, group.owner_namespace, pod, view.cache)) continue;
      auto& values = state->existing_anti_affinity[group.term.topology_key];
      for (const auto& [node, count] : group.by_node) {
        if (!node->node) continue;
        auto label = node->node->labels.find(group.term.topology_key);
        if (label != node->node->labels.end()) values[label->second] += count;
      }
    }
    // The incoming pod's required terms.
    const size_t num_affinity = pod.required_affinity.size();
    const size_t num_anti = pod.required_anti_affinity.size();
    state->affinity.resize(num_affinity);
    state->anti_affinity.resize(num_anti);
    // Affinity needs one pod matching every term: indexes serve a single term.
    bool scan_affinity = num_affinity > 1 ||
                         (num_affinity == 1 && !OwnNamespaceOnly(pod.required_affinity.front(), pod.namespace_name));
    if (num_affinity == 1 && !scan_affinity) {
      const auto& term = pod.required_affinity.front();
      state->affinity[0].index =
          view.cache.MatchingPodsByDomain(pod.namespace_name, term.selector, term.topology_key, /*skip_terminating=*/false);
    }
    std::vector<size_t> scan_anti;
    for (size_t t = 0; t < num_anti; ++t) {
      const auto& term = pod.required_anti_affinity[t];
      if (OwnNamespaceOnly(term, pod.namespace_name)) {
        state->anti_affinity[t].index =
            view.cache.MatchingPodsByDomain(pod.namespace_name, term.selector, term.topology_key, /*skip_terminating=*/false);
      } else {
        scan_anti.push_back(t);
      }
    }
    if (scan_affinity || !scan_anti.empty()) {
      for (const NodeState* node : view.nodes) {
        const Labels& labels = node->node->labels;
        for (const auto& existing : node->pods) {
          if (scan_affinity) {
            bool all = true;
            for (const auto& term : pod.required_affinity) {
              if (!AffinityTermMatches(term, pod.namespace_name, *existing, view.cache)) {
                all = false;
                break;
              }
            }
            if (all) {
              for (size_t t = 0; t < num_affinity; ++t) {
                auto label = labels.find(pod.required_affinity[t].topology_key);
                if (label != labels.end()) ++state->affinity[t].owned[label->second];
              }
            }
          }
          for (size_t t : scan_anti) {
            const auto& term = pod.required_anti_affinity[t];
            auto label = labels.find(term.topology_key);
            if (label == labels.end()) continue;
            if (AffinityTermMatches(term, pod.namespace_name, *existing, view.cache)) {
              ++state->anti_affinity[t].owned[label->second];
            }
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
      bool none_anywhere = true;
      for (size_t t = 0; t < pod.required_affinity.size(); ++t) {
        if (!state->affinity[t].Empty()) none_anywhere = false;
        auto label = labels.find(pod.required_affinity[t].topology_key);
        if (label == labels.end() || !state->affinity[t].Has(label->second)) satisfied = false;
      }
      // The first pod of a group that selects itself may go anywhere its
      // topology keys exist.
      if (!satisfied && none_anywhere && state->self_matches_affinity) {
        satisfied = true;
        for (const auto& term : pod.required_affinity) {
          if (!labels.count(term.topology_key)) satisfied = false;
        }
      }
      if (!satisfied) return PluginStatus::Unresolvable("node(s) didn't match pod affinity rules");
    }
    for (size_t t = 0; t < pod.required_anti_affinity.size(); ++t) {
      auto label = labels.find(pod.required_anti_affinity[t].topology_key);
      if (label != labels.end() && state->anti_affinity[t].Has(label->second)) {
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
