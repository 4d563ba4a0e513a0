// One scheduling attempt as kube-scheduler's schedulePod does it: PreFilter,
// Filter over the nodes in parallel until enough feasible nodes are found
// (an adaptive share of a large cluster, starting where the previous attempt
// stopped), PreScore/Score/NormalizeScore over those, weighted sum, and the
// best node. Ties go to one of the best nodes chosen by the pod's identity,
// so the choice is reproducible yet identical pods spread over equal nodes.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "orchestrator/scheduler/framework.h"
#include "orchestrator/scheduler/parallelizer.h"
#include "orchestrator/scheduler/scheduler_config.h"

namespace kelpie::scheduler {

// Why nodes were rejected, for the FailedScheduling message and preemption.
struct Diagnosis {
  std::map<std::string, PluginStatus> node_statuses;  // by node name
  std::string pre_filter_message;                      // a PreFilter rejected the pod outright
  std::string post_filter_message;                     // what preemption found, a whole sentence
};

// kube-scheduler's FitError message: "0/3 nodes are available: 1 Insufficient
// cpu, 2 node(s) had untolerated taint {k: v}." (reasons counted over nodes,
// sorted as strings), then " preemption: ..." when preemption ran.
std::string FitErrorMessage(int num_all_nodes, const Diagnosis& diagnosis);

// kube-scheduler's numFeasibleNodesToFind: all nodes below 100; otherwise
// `percentage` of them (0: adaptive, 50% minus 1% per 125 nodes, at least
// 5%), and never fewer than 100.
int NumFeasibleNodesToFind(int percentage, int num_all_nodes);

struct ScheduleOutcome {
  enum class Kind { kScheduled, kUnschedulable, kNoNodes };
  Kind kind = Kind::kNoNodes;
  std::string node;         // kScheduled
  int evaluated_nodes = 0;  // nodes the filters ran on
  int feasible_nodes = 0;
  int num_all_nodes = 0;
  Diagnosis diagnosis;      // kUnschedulable
};

class ScheduleAlgorithm {
 public:
  ScheduleAlgorithm(const SchedulerConfig& config, std::vector<std::unique_ptr<Plugin>> plugins);

  // Holds the cache's read lock for the attempt. Not thread-safe: one
  // scheduling thread calls it.
  ScheduleOutcome Schedule(const PodInfo& pod, const SchedulerCache& cache);

  // Runs the PreFilters (into `state`) and then every Filter on `node`:
  // preemption asks whether the pod would fit once victims are gone.
  // Caller holds the cache's read lock.
  PluginStatus PreFilter(CycleState& state, const PodInfo& pod, const ClusterView& view) const;
  PluginStatus RunFilters(const CycleState& state, const PodInfo& pod, const NodeState& node) const;

  const std::vector<std::unique_ptr<Plugin>>& plugins() const { return plugins_; }

 private:
  const SchedulerConfig config_;
  std::vector<std::unique_ptr<Plugin>> plugins_;
  std::vector<const Plugin*> filters_;
  std::vector<std::pair<const Plugin*, int64_t>> scorers_;  // with their weights
  Parallelizer parallelizer_;
  size_t next_start_node_ = 0;
};

}  // namespace kelpie::scheduler
