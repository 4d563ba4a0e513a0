#include "orchestrator/scheduler/schedule_algorithm.h"

#include <algorithm>
#include <atomic>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kelpie::scheduler {
namespace {

constexpr int kMinFeasibleNodesToFind = 100;
constexpr int kMinFeasibleNodesPercentageToFind = 5;

// 64-bit FNV-1a: a stable hash (std::hash may differ between builds).
uint64_t StableHash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace

std::string FitErrorMessage(int num_all_nodes, const Diagnosis& diagnosis) {
  std::string msg = absl::StrCat("0/", num_all_nodes, " nodes are available:");
  if (!diagnosis.pre_filter_message.empty()) {
    absl::StrAppend(&msg, " ", diagnosis.pre_filter_message, ".");
  } else {
    std::map<std::string, int> histogram;
    for (const auto& [node, status] : diagnosis.node_statuses) {
      for (const auto& reason : status.reasons) ++histogram[reason];
    }
    std::vector<std::string> reasons;
    for (const auto& [reason, count] : histogram) reasons.push_back(absl::StrCat(count, " ", reason));
    std::sort(reasons.begin(), reasons.end());
    if (!reasons.empty()) absl::StrAppend(&msg, " ", absl::StrJoin(reasons, ", "), ".");
  }
  // The preemption message is itself a full sentence ("preemption: 0/3 nodes are available: ...").
  if (!diagnosis.post_filter_message.empty()) absl::StrAppend(&msg, " ", diagnosis.post_filter_message);
  return msg;
}

int NumFeasibleNodesToFind(int percentage, int num_all_nodes) {
  if (num_all_nodes < kMinFeasibleNodesToFind) return num_all_nodes;
  if (percentage == 0) {
    percentage = 50 - num_all_nodes / 125;
    if (percentage < kMinFeasibleNodesPercentageToFind) percentage = kMinFeasibleNodesPercentageToFind;
  }
  int n = static_cast<int>(static_cast<int64_t>(num_all_nodes) * percentage / 100);
  return n < kMinFeasibleNodesToFind ? kMinFeasibleNodesToFind : n;
}

ScheduleAlgorithm::ScheduleAlgorithm(const SchedulerConfig& config, std::vector<std::unique_ptr<Plugin>> plugins)
    : config_(config), plugins_(std::move(plugins)), parallelizer_(std::max(1, config.parallelism)) {
  for (const auto& p : plugins_) {
    if (p->IsFilter()) filters_.push_back(p.get());
    if (p->IsScore()) {
      auto w = config_.score_weights.find(p->Name());
      int64_t weight = w == config_.score_weights.end() ? 1 : w->second;
      if (weight > 0) scorers_.emplace_back(p.get(), weight);
    }
  }
}

PluginStatus ScheduleAlgorithm::PreFilter(CycleState& state, const PodInfo& pod, const ClusterView& view) const {
  for (const Plugin* f : filters_) {
    PluginStatus s = f->PreFilter(state, pod, view);
    if (!s.ok()) return s;
  }
  return {};
}

PluginStatus ScheduleAlgorithm::RunFilters(const CycleState& state, const PodInfo& pod, const NodeState& node) const {
  for (const Plugin* f : filters_) {
    PluginStatus s = f->Filter(state, pod, node);
    if (!s.ok()) return s;
  }
  return {};
}

ScheduleOutcome ScheduleAlgorithm::Schedule(const PodInfo& pod, const SchedulerCache& cache) {
  ScheduleOutcome out;
  auto lock = cache.ReadLock();
  const std::vector<NodeState*>& nodes = cache.Nodes();
  out.num_all_nodes = static_cast<int>(nodes.size());
  if (nodes.empty()) {
    out.kind = ScheduleOutcome::Kind::kNoNodes;
    return out;
  }
  ClusterView view{cache, nodes};
  CycleState state;
  PluginStatus pre = PreFilter(state, pod, view);
  if (!pre.ok()) {
    out.kind = ScheduleOutcome::Kind::kUnschedulable;
    out.diagnosis.pre_filter_message = pre.reasons.empty() ? "" : pre.reasons.front();
    for (const NodeState* n : nodes) out.diagnosis.node_statuses[n->name()] = pre;
    return out;
  }

  // Filter, in parallel, from where the last attempt stopped, until enough
  // feasible nodes are found. Results are kept by position so the feasible
  // set is the same whatever the threads' timing.
  const size_t total = nodes.size();
  const size_t want = static_cast<size_t>(NumFeasibleNodesToFind(config_.percentage_of_nodes_to_score,
                                                                  static_cast<int>(total)));
  std::vector<PluginStatus> statuses(total);
  std::vector<char> fits(total, 0);
  std::atomic<size_t> found{0};
  const size_t start = next_start_node_ % total;
  std::function<void(size_t)> filter_one = [&](size_t i) {
    const NodeState& node = *nodes[(start + i) % total];
    PluginStatus s = RunFilters(state, pod, node);
    if (s.ok()) {
      fits[i] = 1;
      found.fetch_add(1, std::memory_order_relaxed);
    } else {
      statuses[i] = std::move(s);
    }
  };
  std::function<bool()> enough = [&] { return found.load(std::memory_order_relaxed) >= want; };
  size_t chunk = std::max<size_t>(16, total / (static_cast<size_t>(std::max(1, config_.parallelism)) * 8));
  size_t processed = parallelizer_.Until(total, chunk, filter_one, enough);

  std::vector<const NodeState*> feasible;
  size_t evaluated = processed;
  for (size_t i = 0; i < processed; ++i) {
    if (!fits[i]) continue;
    feasible.push_back(nodes[(start + i) % total]);
    if (feasible.size() == want) {
      evaluated = i + 1;
      break;
    }
  }
  next_start_node_ = (start + evaluated) % total;
  out.evaluated_nodes = static_cast<int>(evaluated);
  out.feasible_nodes = static_cast<int>(feasible.size());

  if (feasible.empty()) {
    out.kind = ScheduleOutcome::Kind::kUnschedulable;
    for (size_t i = 0; i < processed; ++i) {
      out.diagnosis.node_statuses[nodes[(start + i) % total]->name()] = std::move(statuses[i]);
    }
    return out;
  }
  out.kind = ScheduleOutcome::Kind::kScheduled;
  if (feasible.size() == 1) {
    out.node = feasible.front()->name();
    return out;
  }

  // Score: each plugin's raw scores over the feasible nodes, normalized,
  // weighted and summed.
  for (const auto& [plugin, weight] : scorers_) plugin->PreScore(state, pod, view, feasible);
  const size_t count = feasible.size();
  std::vector<std::vector<int64_t>> raw(scorers_.size(), std::vector<int64_t>(count, 0));
  std::function<void(size_t)> score_one = [&](size_t i) {
    for (size_t p = 0; p < scorers_.size(); ++p) raw[p][i] = scorers_[p].first->Score(state, pod, *feasible[i]);
  };
  parallelizer_.Until(count, std::max<size_t>(16, count / 8), score_one);
  std::vector<int64_t> total_scores(count, 0);
  for (size_t p = 0; p < scorers_.size(); ++p) {
    scorers_[p].first->NormalizeScore(state, pod, raw[p]);
    for (size_t i = 0; i < count; ++i) total_scores[i] += raw[p][i] * scorers_[p].second;
  }
  int64_t best = *std::max_element(total_scores.begin(), total_scores.end());
  std::vector<size_t> tied;
  for (size_t i = 0; i < count; ++i) {
    if (total_scores[i] == best) tied.push_back(i);
  }
  const std::string& identity = pod.uid.empty() ? pod.Key() : pod.uid;
  out.node = feasible[tied[StableHash(identity) % tied.size()]]->name();
  return out;
}

}  // namespace kelpie::scheduler
