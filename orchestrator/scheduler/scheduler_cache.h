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

// Pods of one namespace matching one selector, counted per value of one node
// label (a topology domain), kept current as pods come and go so that the
// PodTopologySpread and InterPodAffinity PreFilters read counts instead of
// scanning every pod in every attempt. Only pods on nodes that have a Node
// object carrying the label count; domains whose count drops to zero are
// erased, so every entry is positive.
struct DomainCountIndex {
  std::string namespace_name;
  LabelSelector selector;
  std::string topology_key;
  bool skip_terminating = true;
  std::unordered_map<std::string, int64_t> by_domain;
  uint64_t last_used = 0;  // for evicting the least recently used index
};

// Existing pods' required anti-affinity terms, grouped by identical term and
// owner namespace, with how many such pods sit on each node: the
// InterPodAffinity PreFilter evaluates each distinct term once against the
// incoming pod instead of visiting every pod.
struct AntiAffinityGroup {
  PodAffinityTerm term;
  std::string owner_namespace;
  // Node states stay alive while they hold pods, so the pointers are valid
  // while their count is positive (entries at zero are erased).
  std::unordered_map<const NodeState*, int64_t> by_node;
};

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

  // Counts of pods in `namespace_name` matching `selector` per value of the
  // node label `topology_key` (terminating pods left out when
  // `skip_terminating`). Built on first use from the cached pods, then
  // maintained incrementally; dropped when Node labels change. Caller holds
  // the read lock; the result stays valid (and unchanged) while it does.
  std::shared_ptr<const DomainCountIndex> MatchingPodsByDomain(const std::string& namespace_name,
                                                               const LabelSelector& selector,
                                                               const std::string& topology_key,
                                                               bool skip_terminating) const;
  // Nodes (with a Node object) per value of the label `key`; null when no
  // node has it. Caller holds the read lock.
  const std::unordered_map<std::string, int>* NodesByLabelValue(const std::string& key) const;
  // How many nodes carry the label `key`.
  size_t NodesWithLabel(const std::string& key) const;
  // Required anti-affinity terms of cached pods, by term. Caller holds the read lock.
  const std::unordered_map<std::string, AntiAffinityGroup>& RequiredAntiAffinityGroups() const {
    return anti_affinity_groups_;
  }

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
  void AddPodLocked(std::shared_ptr<const PodInfo> pod, bool assumed);
  // Keeps the count indexes and anti-affinity groups current for a pod
  // joining (+1) or leaving (-1) `state`.
  void IndexPodLocked(const PodInfo& pod, NodeState& state, int delta);
  void CountNodeLabelsLocked(const NodeInfo& node, int delta);

  std::function<Clock::time_point()> now_;
  std::chrono::milliseconds assumed_ttl_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<NodeState>> nodes_;
  std::vector<NodeState*> node_order_;
  std::unordered_map<std::string, PodEntry> pods_;
  // Assumed pods, so the expiry sweep need not visit every bound pod.
  std::unordered_map<std::string, Clock::time_point> assumed_deadlines_;
  // Label key -> value -> nodes carrying it.
  std::unordered_map<std::string, std::unordered_map<std::string, int>> node_label_values_;
  std::unordered_map<std::string, size_t> nodes_with_label_;
  // Built lazily by the scheduling thread under the read lock, hence
  // mutable and guarded by index_mu_ (updated under the write lock).
  mutable std::mutex index_mu_;
  mutable std::unordered_map<std::string, std::shared_ptr<DomainCountIndex>> count_indexes_;
  mutable uint64_t index_clock_ = 0;
  std::unordered_map<std::string, AntiAffinityGroup> anti_affinity_groups_;
  std::map<std::string, Labels> namespaces_;
  std::unordered_map<std::string, int> image_nodes_;
  void CountImagesLocked(const NodeInfo& node, int delta);
  std::map<std::string, std::map<std::string, LabelSelector>> workload_selectors_;
};

}  // namespace kelpie::scheduler
