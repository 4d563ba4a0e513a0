// The scheduler's configuration: which plugins run, their score weights, and
// the knobs kube-scheduler's KubeSchedulerConfiguration has for them.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "orchestrator/scheduler/scheduling_queue.h"

namespace kelpie::scheduler {

enum class ScoringStrategy { kLeastAllocated, kMostAllocated };

struct SchedulerConfig {
  std::string scheduler_name = "default-scheduler";
  // 0: adaptive (50% minus 1% per 125 nodes, at least 5%, at least 100 nodes).
  int percentage_of_nodes_to_score = 0;
  ScoringStrategy scoring_strategy = ScoringStrategy::kLeastAllocated;
  // Resource weights of NodeResourcesFit scoring (cpu and memory by default).
  std::map<std::string, int64_t> resource_weights = {{"cpu", 1}, {"memory", 1}};
  // Score weights of kube-scheduler's default profile.
  std::map<std::string, int64_t> score_weights = {
      {"TaintToleration", 3}, {"NodeAffinity", 2},    {"NodeResourcesFit", 1},
      {"PodTopologySpread", 2}, {"InterPodAffinity", 2}, {"NodeResourcesBalancedAllocation", 1},
      {"ImageLocality", 1},
  };
  // Plugins turned off (filter and score parts alike).
  std::set<std::string> disabled_plugins;
  // Default PodTopologySpread constraints apply when a pod has none of its own.
  bool default_spread_constraints = true;
  bool preemption = true;
  int parallelism = 2;     // filter/score workers including the scheduling thread
  int bind_workers = 8;    // concurrent binding requests
  QueueOptions queue;
  std::chrono::milliseconds assumed_pod_ttl{std::chrono::seconds(30)};

  // Rejects unknown plugin names and negative weights.
  absl::Status Validate() const;
};

// Every plugin name the scheduler knows.
const std::set<std::string>& KnownPlugins();

// Reads a scheduler configuration file (YAML), e.g.
//   schedulerName: default-scheduler
//   percentageOfNodesToScore: 0        # 0: adaptive
//   scoringStrategy: MostAllocated     # or LeastAllocated
//   resourceWeights: {cpu: 1, memory: 1}
//   pluginWeights: {NodeResourcesFit: 2, ImageLocality: 0}
//   disabledPlugins: [ImageLocality]
//   defaultSpreadConstraints: true
//   preemption: true
//   parallelism: 2
//   bindWorkers: 8
// Keys left out keep their defaults; unknown keys, plugins and bad values
// are errors naming the file and key.
absl::StatusOr<SchedulerConfig> LoadSchedulerConfig(const std::string& path);
// The same from YAML text (`source` names it in errors).
absl::StatusOr<SchedulerConfig> ParseSchedulerConfig(const std::string& yaml, const std::string& source);

}  // namespace kelpie::scheduler
