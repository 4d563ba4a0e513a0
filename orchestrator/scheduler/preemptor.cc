#include "orchestrator/scheduler/preemptor.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace kelpie::scheduler {
namespace {

constexpr char kNotHelpful[] = "Preemption is not helpful for scheduling";
constexpr char kNoVictims[] = "No preemption victims found for incoming pod";

// kube-scheduler's MoreImportantPod: higher priority first, then older.
bool MoreImportant(const std::shared_ptr<const PodInfo>& a, const std::shared_ptr<const PodInfo>& b) {
  if (a->Priority() != b->Priority()) return a->Priority() > b->Priority();
  return a->creation_timestamp < b->creation_timestamp;
}

}  // namespace

PreemptionResult Preemptor::Preempt(const PodInfo& pod, const SchedulerCache& cache, const Diagnosis& diagnosis) const {
  PreemptionResult result;
  if (pod.preempt_never) {
    result.message = "preemption: not eligible due to preemptionPolicy=Never.";
    return result;
  }
  auto lock = cache.ReadLock();
  const auto& nodes = cache.Nodes();
  // A pod that already preempted waits for its victims to terminate rather
  // than evicting more.
  if (!pod.nominated_node_name.empty()) {
    if (const NodeState* nominated = cache.FindNode(pod.nominated_node_name)) {
      for (const auto& p : nominated->pods) {
        if (p->terminating && p->Priority() < pod.Priority()) {
          result.message = "preemption: not eligible due to a terminating pod on the nominated node.";
          return result;
        }
      }
    }
  }
  ClusterView view{cache, nodes};
  CycleState state;
  PluginStatus pre = algorithm_.PreFilter(state, pod, view);

  Diagnosis why;
  struct Candidate {
    const NodeState* node;
    std::vector<std::shared_ptr<const PodInfo>> victims;
    std::tuple<size_t, int32_t, int64_t> rank;
  };
  std::vector<Candidate> candidates;
  for (const NodeState* node : nodes) {
    auto it = diagnosis.node_statuses.find(node->name());
    if (!pre.ok() || it == diagnosis.node_statuses.end() ||
        it->second.code == PluginStatus::Code::kUnschedulableAndUnresolvable) {
      why.node_statuses[node->name()] = PluginStatus::Unresolvable(kNotHelpful);
      continue;
    }
    NodeState trial = *node;
    std::vector<std::shared_ptr<const PodInfo>> potential;
    for (const auto& p : node->pods) {
      if (p->Priority() < pod.Priority() && !p->terminating) potential.push_back(p);
    }
    if (potential.empty()) {
      why.node_statuses[node->name()] = PluginStatus::Unresolvable(kNoVictims);
      continue;
    }
    for (const auto& p : potential) trial.RemovePod(p->Key());
    PluginStatus fits = algorithm_.RunFilters(state, pod, trial);
    if (!fits.ok()) {
      why.node_statuses[node->name()] = fits;
      continue;
    }
    std::sort(potential.begin(), potential.end(), MoreImportant);
    Candidate c{node, {}, {}};
    for (const auto& p : potential) {
      trial.AddPod(p);
      if (!algorithm_.RunFilters(state, pod, trial).ok()) {
        trial.RemovePod(p->Key());
        c.victims.push_back(p);
      }
    }
    int32_t highest = 0;
    int64_t sum = 0;
    for (const auto& v : c.victims) {
      highest = std::max(highest, v->Priority());
      sum += v->Priority();
    }
    c.rank = {c.victims.size(), highest, sum};
    candidates.push_back(std::move(c));
  }
  if (candidates.empty()) {
    Diagnosis d;
    d.node_statuses = std::move(why.node_statuses);
    result.message = absl::StrCat("preemption: ", FitErrorMessage(static_cast<int>(nodes.size()), d));
    return result;
  }
  auto best = std::min_element(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.rank != b.rank) return a.rank < b.rank;
    return a.node->name() < b.node->name();
  });
  result.node = best->node->name();
  result.victims = std::move(best->victims);
  return result;
}

}  // namespace kelpie::scheduler
