// What the scheduler knows about one node: the Node itself and the pods
// bound or assumed to it, with their sums kept up to date.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "orchestrator/scheduler/pod_info.h"

namespace kelpie::scheduler {

struct NodeState {
  std::shared_ptr<const NodeInfo> node;  // null while only pods name this node
  std::vector<std::shared_ptr<const PodInfo>> pods;
  Resources requested;
  Resources non_zero_requested;
  std::vector<HostPort> used_ports;
  int pods_with_affinity = 0;
  int pods_with_required_anti_affinity = 0;

  const std::string& name() const { return node->name; }
  void AddPod(std::shared_ptr<const PodInfo> pod);
  // Removes the pod with `key`; false when it is not here.
  bool RemovePod(const std::string& key);
};

// Two host ports collide when protocol and port match and either address is
// the wildcard or both are the same.
bool HostPortsConflict(const HostPort& a, const HostPort& b);

}  // namespace kelpie::scheduler
