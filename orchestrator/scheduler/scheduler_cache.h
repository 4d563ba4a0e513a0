// The scheduler's view of the cluster: nodes with the pods bound to them as
// the informers report, plus pods the scheduler has *assumed* onto a node
// (decided, binding in flight). Counting assumed pods is what keeps two quick
// decisions from overcommitting one node before the bindings come back.
//
// Locking: one shared mutex. A scheduling cycle reads under ReadLock();
// informer updates and Assume/Forget take the write side.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "orchestrator/scheduler/node_state.h"
#include "orchestrator/scheduler/pod_info.h"

namespace kelpie::scheduler {

using Clock = std::chrono::steady_clock;

class SchedulerCache {
 public:
  // Assumed pods whose binding finished but that the informer has not
  // reported within `assumed_ttl` are dropped (the binding was lost).
  explicit SchedulerCache(std::function<Clock::time_point()> now = Clock::now,
                          std::chrono::milliseconds assumed_ttl = std::chrono::seconds(30));

  // Informer side.
  void AddOrUpdateNode(NodeInfo node);
  void RemoveNode(const std::string& name);
  // A pod bound to a node (spec.nodeName set). Confirms an assumed pod.
  void AddOrUpdatePod(PodInfo pod);
  void RemovePod(const std::string& key);
  void SetNamespaceLabels(const std::string& name, Labels labels);
  void RemoveNamespace(const std::string& name);
  // Selectors of Services, ReplicaSets, ReplicationControllers and
  // StatefulSets, which make up the default spreading selector of a pod.
  void SetWorkloadSelector(const std::string& namespace_name, const std::string& kind_and_name, LabelSelector selector);
  void RemoveWorkloadSelector(const std::string& namespace_name, const std::string& kind_and_name);

  // Scheduler side. `pod.node_name` is the chosen node.
  absl::Status AssumePod(PodInfo pod);
  // The binding request finished: start the expiry clock.
  void FinishBinding(const std::string& key);
  // The binding failed: give the resources back.
  void ForgetPod(const std::string& key);
  // Drops assumed pods whose TTL ran out; returns how many.
  int CleanupExpiredAssumedPods();
  bool IsAssumed(const std::string& key) const;
  // Whether the pod is in the cache (bound or assumed).
  bool Contains(const std::string& key) const;

  // Reading: hold the lock while using the references below.
  std::shared_lock<std::shared_mutex> ReadLock() const { return std::shared_lock<std::shared_mutex>(mu_); }
  // Nodes with a Node object, in a stable order (insertion; removal swaps).
  const std::vector<NodeState*>& Nodes() const { return node_order_; }
  const NodeState* FindNode(const std::string& name) const;
  const Labels* NamespaceLabels(const std::string& name) const;
  // The selector kube-scheduler's default topology spreading uses for `pod`:
  // the union of the selectors of the Services, ReplicationControllers,
  // ReplicaSets and StatefulSets selecting it; nullopt when there are none.
  std::optional<LabelSelector> DefaultSpreadSelector(const PodInfo& pod) const;
  size_t PodCount() const;
  // How many nodes report holding `image` (a normalized name), kept as nodes
  // come and go so ImageLocality need not scan every node per attempt.
  int NodesWithImage(const std::string& image) const;

 private:
  struct PodEntry {
    std::shared_ptr<const PodInfo> pod;
    bool assumed = false;
    bool binding_finished = false;
    Clock::time_point deadline{};
  };
  NodeState& NodeFor(const std::string& name);
  void RemoveNodeStateIfEmpty(const std::string& name);
  void RemovePodLocked(const std::string& key);

  std::function<Clock::time_point()> now_;
  std::chrono::milliseconds assumed_ttl_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<NodeState>> nodes_;
  std::vector<NodeState*> node_order_;
  std::unordered_map<std::string, PodEntry> pods_;
  std::map<std::string, Labels> namespaces_;
  std::unordered_map<std::string, int> image_nodes_;
  void CountImagesLocked(const NodeInfo& node, int delta);
  std::map<std::string, std::map<std::string, LabelSelector>> workload_selectors_;
};

}  // namespace kelpie::scheduler
