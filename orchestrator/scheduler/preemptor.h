// Preemption (kube-scheduler's DefaultPreemption PostFilter): when a pod fits
// no node, find the node where removing the fewest pods of lower priority
// lets it fit. On each node the filters rejected as resolvable, every
// lower-priority pod is removed, the pod must then fit, and the removed pods
// are added back from the most important down as long as the pod still fits;
// the rest are the victims. Nodes are compared by fewest victims, then the
// lowest highest victim priority, then the lowest sum of victim priorities.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "orchestrator/scheduler/schedule_algorithm.h"

namespace kelpie::scheduler {

struct PreemptionResult {
  std::string node;  // empty: no node can be freed
  std::vector<std::shared_ptr<const PodInfo>> victims;
  // kube-scheduler's PostFilter message when `node` is empty:
  // "preemption: 0/3 nodes are available: 1 Preemption is not helpful for
  // scheduling, 2 No preemption victims found for incoming pod."
  std::string message;
};

class Preemptor {
 public:
  explicit Preemptor(const ScheduleAlgorithm& algorithm) : algorithm_(algorithm) {}

  // `diagnosis` is the failed attempt's; takes the cache's read lock.
  PreemptionResult Preempt(const PodInfo& pod, const SchedulerCache& cache, const Diagnosis& diagnosis) const;

 private:
  const ScheduleAlgorithm& algorithm_;
};

}  // namespace kelpie::scheduler
