// The built-in plugins, in kube-scheduler's filter order.
#pragma once

#include <memory>
#include <vector>

#include "orchestrator/scheduler/framework.h"
#include "orchestrator/scheduler/scheduler_config.h"

namespace kelpie::scheduler {

std::unique_ptr<Plugin> NewNodeUnschedulable();
std::unique_ptr<Plugin> NewNodeName();
std::unique_ptr<Plugin> NewTaintToleration();
std::unique_ptr<Plugin> NewNodeAffinity();
std::unique_ptr<Plugin> NewNodePorts();
std::unique_ptr<Plugin> NewNodeResourcesFit(ScoringStrategy strategy, std::map<std::string, int64_t> weights);
std::unique_ptr<Plugin> NewBalancedAllocation();
std::unique_ptr<Plugin> NewImageLocality();
std::unique_ptr<Plugin> NewPodTopologySpread(bool default_constraints);
std::unique_ptr<Plugin> NewInterPodAffinity();

// spec.nodeSelector and required node affinity (shared with PodTopologySpread).
bool PodMatchesNodeSelectorAndAffinity(const PodInfo& pod, const NodeInfo& node);

// The enabled plugins of `config`, in filter order.
std::vector<std::unique_ptr<Plugin>> BuildPlugins(const SchedulerConfig& config);

}  // namespace kelpie::scheduler
