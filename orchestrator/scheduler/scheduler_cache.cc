#include "orchestrator/scheduler/scheduler_cache.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace kelpie::scheduler {

SchedulerCache::SchedulerCache(std::function<Clock::time_point()> now, std::chrono::milliseconds assumed_ttl)
    : now_(std::move(now)), assumed_ttl_(assumed_ttl) {}

NodeState& SchedulerCache::NodeFor(const std::string& name) {
  auto& slot = nodes_[name];
  if (!slot) slot = std::make_unique<NodeState>();
  return *slot;
}

void SchedulerCache::RemoveNodeStateIfEmpty(const std::string& name) {
  auto it = nodes_.find(name);
  if (it != nodes_.end() && !it->second->node && it->second->pods.empty()) nodes_.erase(it);
}

void SchedulerCache::AddOrUpdateNode(NodeInfo node) {
  std::unique_lock lock(mu_);
  std::string name = node.name;
  NodeState& state = NodeFor(name);
  bool is_new = state.node == nullptr;
  if (!is_new) CountImagesLocked(*state.node, -1);
  state.node = std::make_shared<const NodeInfo>(std::move(node));
  CountImagesLocked(*state.node, +1);
  if (is_new) node_order_.push_back(&state);
}

void SchedulerCache::RemoveNode(const std::string& name) {
  std::unique_lock lock(mu_);
  auto it = nodes_.find(name);
  if (it == nodes_.end() || !it->second->node) return;
  NodeState* state = it->second.get();
  auto pos = std::find(node_order_.begin(), node_order_.end(), state);
  if (pos != node_order_.end()) {
    *pos = node_order_.back();
    node_order_.pop_back();
  }
  // Pods still bound to a deleted node keep their entry until they go away.
  CountImagesLocked(*state->node, -1);
  state->node.reset();
  RemoveNodeStateIfEmpty(name);
}

void SchedulerCache::RemovePodLocked(const std::string& key) {
  auto it = pods_.find(key);
  if (it == pods_.end()) return;
  std::string node = it->second.pod->node_name;
  auto n = nodes_.find(node);
  if (n != nodes_.end()) {
    n->second->RemovePod(key);
    RemoveNodeStateIfEmpty(node);
  }
  pods_.erase(it);
}

void SchedulerCache::AddOrUpdatePod(PodInfo pod) {
  std::unique_lock lock(mu_);
  std::string key = pod.Key();
  if (pod.node_name.empty()) {
    // Unbound pods are not in the cache; an update of a pod the scheduler
    // assumed (binding in flight) keeps the assumption.
    auto it = pods_.find(key);
    if (it != pods_.end() && !it->second.assumed) RemovePodLocked(key);
    return;
  }
  RemovePodLocked(key);  // an assumed pod is replaced by what the API server says
  auto shared = std::make_shared<const PodInfo>(std::move(pod));
  NodeFor(shared->node_name).AddPod(shared);
  pods_[key] = PodEntry{shared, false, false, {}};
}

void SchedulerCache::RemovePod(const std::string& key) {
  std::unique_lock lock(mu_);
  RemovePodLocked(key);
}

absl::Status SchedulerCache::AssumePod(PodInfo pod) {
  std::unique_lock lock(mu_);
  std::string key = pod.Key();
  if (pods_.count(key)) return absl::AlreadyExistsError(absl::StrCat("pod ", key, " is already in the cache"));
  if (pod.node_name.empty()) return absl::InvalidArgumentError(absl::StrCat("pod ", key, " has no node to assume"));
  auto shared = std::make_shared<const PodInfo>(std::move(pod));
  NodeFor(shared->node_name).AddPod(shared);
  pods_[key] = PodEntry{shared, true, false, {}};
  return absl::OkStatus();
}

void SchedulerCache::FinishBinding(const std::string& key) {
  std::unique_lock lock(mu_);
  auto it = pods_.find(key);
  if (it == pods_.end() || !it->second.assumed) return;
  it->second.binding_finished = true;
  it->second.deadline = now_() + assumed_ttl_;
}

void SchedulerCache::ForgetPod(const std::string& key) {
  std::unique_lock lock(mu_);
  auto it = pods_.find(key);
  if (it == pods_.end() || !it->second.assumed) return;
  RemovePodLocked(key);
}

int SchedulerCache::CleanupExpiredAssumedPods() {
  std::unique_lock lock(mu_);
  auto now = now_();
  std::vector<std::string> expired;
  for (const auto& [key, entry] : pods_) {
    if (entry.assumed && entry.binding_finished && now >= entry.deadline) expired.push_back(key);
  }
  for (const auto& key : expired) RemovePodLocked(key);
  return static_cast<int>(expired.size());
}

bool SchedulerCache::IsAssumed(const std::string& key) const {
  std::shared_lock lock(mu_);
  auto it = pods_.find(key);
  return it != pods_.end() && it->second.assumed;
}

bool SchedulerCache::Contains(const std::string& key) const {
  std::shared_lock lock(mu_);
  return pods_.count(key) > 0;
}

const NodeState* SchedulerCache::FindNode(const std::string& name) const {
  auto it = nodes_.find(name);
  if (it == nodes_.end() || !it->second->node) return nullptr;
  return it->second.get();
}

void SchedulerCache::SetNamespaceLabels(const std::string& name, Labels labels) {
  std::unique_lock lock(mu_);
  namespaces_[name] = std::move(labels);
}

void SchedulerCache::RemoveNamespace(const std::string& name) {
  std::unique_lock lock(mu_);
  namespaces_.erase(name);
}

const Labels* SchedulerCache::NamespaceLabels(const std::string& name) const {
  auto it = namespaces_.find(name);
  return it == namespaces_.end() ? nullptr : &it->second;
}

void SchedulerCache::SetWorkloadSelector(const std::string& namespace_name, const std::string& kind_and_name,
                                         LabelSelector selector) {
  std::unique_lock lock(mu_);
  workload_selectors_[namespace_name][kind_and_name] = std::move(selector);
}

void SchedulerCache::RemoveWorkloadSelector(const std::string& namespace_name, const std::string& kind_and_name) {
  std::unique_lock lock(mu_);
  auto it = workload_selectors_.find(namespace_name);
  if (it == workload_selectors_.end()) return;
  it->second.erase(kind_and_name);
  if (it->second.empty()) workload_selectors_.erase(it);
}

std::optional<LabelSelector> SchedulerCache::DefaultSpreadSelector(const PodInfo& pod) const {
  auto it = workload_selectors_.find(pod.namespace_name);
  if (it == workload_selectors_.end()) return std::nullopt;
  LabelSelector merged;
  bool any = false;
  for (const auto& [name, selector] : it->second) {
    if (selector.requirements.empty() || !selector.Matches(pod.labels)) continue;
    any = true;
    for (const auto& r : selector.requirements) merged.requirements.push_back(r);
  }
  if (!any) return std::nullopt;
  return merged;
}

void SchedulerCache::CountImagesLocked(const NodeInfo& node, int delta) {
  for (const auto& [image, size] : node.image_sizes) {
    int& n = image_nodes_[image];
    n += delta;
    if (n <= 0) image_nodes_.erase(image);
  }
}

int SchedulerCache::NodesWithImage(const std::string& image) const {
  auto it = image_nodes_.find(image);
  return it == image_nodes_.end() ? 0 : it->second;
}

size_t SchedulerCache::PodCount() const {
  std::shared_lock lock(mu_);
  return pods_.size();
}

}  // namespace kelpie::scheduler
