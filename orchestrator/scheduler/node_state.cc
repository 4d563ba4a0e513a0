#include "orchestrator/scheduler/node_state.h"

#include <algorithm>

namespace kelpie::scheduler {

void NodeState::AddPod(std::shared_ptr<const PodInfo> pod) {
  requested.Add(pod->requests);
  non_zero_requested.Add(pod->non_zero_requests);
  for (const auto& p : pod->host_ports) used_ports.push_back(p);
  if (pod->HasAffinityConstraints()) ++pods_with_affinity;
  if (!pod->required_anti_affinity.empty()) ++pods_with_required_anti_affinity;
  pods.push_back(std::move(pod));
}

bool NodeState::RemovePod(const std::string& key) {
  for (size_t i = 0; i < pods.size(); ++i) {
    if (pods[i]->namespace_name.size() + 1 + pods[i]->name.size() != key.size() || pods[i]->Key() != key) continue;
    const PodInfo& pod = *pods[i];
    requested.Subtract(pod.requests);
    non_zero_requested.Subtract(pod.non_zero_requests);
    for (const auto& p : pod.host_ports) {
      auto it = std::find_if(used_ports.begin(), used_ports.end(), [&](const HostPort& u) {
        return u.port == p.port && u.protocol == p.protocol && u.host_ip == p.host_ip;
      });
      if (it != used_ports.end()) used_ports.erase(it);
    }
    if (pod.HasAffinityConstraints()) --pods_with_affinity;
    if (!pod.required_anti_affinity.empty()) --pods_with_required_anti_affinity;
    pods[i] = std::move(pods.back());
    pods.pop_back();
    return true;
  }
  return false;
}

bool HostPortsConflict(const HostPort& a, const HostPort& b) {
  if (a.port != b.port || a.protocol != b.protocol) return false;
  auto wildcard = [](const std::string& ip) { return ip.empty() || ip == "0.0.0.0" || ip == "::"; };
  return wildcard(a.host_ip) || wildcard(b.host_ip) || a.host_ip == b.host_ip;
}

}  // namespace kelpie::scheduler
