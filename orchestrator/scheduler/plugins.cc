#include "orchestrator/scheduler/plugins.h"

#include "absl/strings/str_cat.h"

namespace kelpie::scheduler {

const std::set<std::string>& KnownPlugins() {
  static const std::set<std::string> kNames = {
      "NodeUnschedulable", "NodeName",         "TaintToleration", "NodeAffinity",
      "NodePorts",         "NodeResourcesFit", "PodTopologySpread", "InterPodAffinity",
      "NodeResourcesBalancedAllocation", "ImageLocality",
  };
  return kNames;
}

absl::Status SchedulerConfig::Validate() const {
  for (const auto& name : disabled_plugins) {
    if (!KnownPlugins().count(name)) return absl::InvalidArgumentError(absl::StrCat("unknown plugin \"", name, "\""));
  }
  for (const auto& [name, weight] : score_weights) {
    if (!KnownPlugins().count(name)) return absl::InvalidArgumentError(absl::StrCat("unknown plugin \"", name, "\""));
    if (weight < 0) return absl::InvalidArgumentError(absl::StrCat("plugin ", name, ": negative score weight"));
  }
  for (const auto& [name, weight] : resource_weights) {
    if (weight <= 0) return absl::InvalidArgumentError(absl::StrCat("resource ", name, ": weight must be positive"));
  }
  if (percentage_of_nodes_to_score < 0 || percentage_of_nodes_to_score > 100) {
    return absl::InvalidArgumentError("percentageOfNodesToScore must be between 0 and 100");
  }
  if (parallelism < 1 || bind_workers < 1) return absl::InvalidArgumentError("parallelism and bind workers must be >= 1");
  return absl::OkStatus();
}

std::vector<std::unique_ptr<Plugin>> BuildPlugins(const SchedulerConfig& config) {
  std::vector<std::unique_ptr<Plugin>> all;
  all.push_back(NewNodeUnschedulable());
  all.push_back(NewNodeName());
  all.push_back(NewTaintToleration());
  all.push_back(NewNodeAffinity());
  all.push_back(NewNodePorts());
  all.push_back(NewNodeResourcesFit(config.scoring_strategy, config.resource_weights));
  all.push_back(NewPodTopologySpread(config.default_spread_constraints));
  all.push_back(NewInterPodAffinity());
  all.push_back(NewBalancedAllocation());
  all.push_back(NewImageLocality());
  std::vector<std::unique_ptr<Plugin>> enabled;
  for (auto& p : all) {
    if (!config.disabled_plugins.count(p->Name())) enabled.push_back(std::move(p));
  }
  return enabled;
}

void DefaultNormalizeScore(std::vector<int64_t>& scores, bool reverse) {
  int64_t max = 0;
  for (int64_t s : scores) max = std::max(max, s);
  if (max == 0) {
    if (reverse) {
      for (auto& s : scores) s = kMaxNodeScore;
    }
    return;
  }
  for (auto& s : scores) {
    s = kMaxNodeScore * s / max;
    if (reverse) s = kMaxNodeScore - s;
  }
}

bool Tolerates(const std::vector<Toleration>& tolerations, const Taint& taint) {
  for (const auto& t : tolerations) {
    if (!t.effect.empty() && t.effect != taint.effect) continue;
    if (!t.key.empty() && t.key != taint.key) continue;
    // An empty key with Exists tolerates everything.
    if (t.op == "Exists") return true;
    if ((t.op == "Equal" || t.op.empty()) && t.value == taint.value) return true;
  }
  return false;
}

bool AffinityTermMatches(const PodAffinityTerm& term, const std::string& owner_namespace, const PodInfo& candidate,
                         const SchedulerCache& cache) {
  bool ns_ok = false;
  if (term.namespaces.empty() && !term.namespace_selector) {
    ns_ok = candidate.namespace_name == owner_namespace;
  } else {
    for (const auto& n : term.namespaces) {
      if (n == candidate.namespace_name) {
        ns_ok = true;
        break;
      }
    }
    if (!ns_ok && term.namespace_selector) {
      const Labels* labels = cache.NamespaceLabels(candidate.namespace_name);
      static const Labels kEmpty;
      ns_ok = term.namespace_selector->Matches(labels ? *labels : kEmpty);
    }
  }
  return ns_ok && term.selector.Matches(candidate.labels);
}

}  // namespace kelpie::scheduler
