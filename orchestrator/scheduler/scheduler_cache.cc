#include "orchestrator/scheduler/scheduler_cache.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace kelpie::scheduler {
namespace {

// Bounds the count indexes kept (distinct selectors in use); the least
// recently used one goes first.
constexpr size_t kMaxCountIndexes = 64;

void AppendSelector(std::string& out, const LabelSelector& selector) {
  if (selector.matches_nothing) out += "\x01nothing";
  for (const auto& r : selector.requirements) {
    absl::StrAppend(&out, "\x1e", r.key, "\x1f", static_cast<int>(r.op));
    for (const auto& v : r.values) absl::StrAppend(&out, "\x1f", v);
  }
}

std::string AntiAffinitySignature(const PodAffinityTerm& term, const std::string& owner_namespace) {
  std::string sig = absl::StrCat(owner_namespace, "\x1d", term.topology_key, "\x1d");
  for (const auto& n : term.namespaces) absl::StrAppend(&sig, n, "\x1f");
  sig += "\x1d";
  if (term.namespace_selector) {
    sig += "sel";
    AppendSelector(sig, *term.namespace_selector);
  }
  sig += "\x1d";
  AppendSelector(sig, term.selector);
  return sig;
}

bool IndexCounts(const DomainCountIndex& index, const PodInfo& pod) {
  if (index.skip_terminating && pod.terminating) return false;
  return pod.namespace_name == index.namespace_name && index.selector.Matches(pod.labels);
}

}  // namespace

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
  bool labels_changed = is_new || state.node->labels != node.labels;
  if (!is_new) CountImagesLocked(*state.node, -1);
  if (labels_changed && !is_new) CountNodeLabelsLocked(*state.node, -1);
  state.node = std::make_shared<const NodeInfo>(std::move(node));
  CountImagesLocked(*state.node, +1);
  if (labels_changed) {
    CountNodeLabelsLocked(*state.node, +1);
    // Domains moved: the count indexes are rebuilt on their next use.
    std::lock_guard index_lock(index_mu_);
    count_indexes_.clear();
  }
  if (is_new) node_order_.push_back(&state);
}

void SchedulerCache::CountNodeLabelsLocked(const NodeInfo& node, int delta) {
  for (const auto& [key, value] : node.labels) {
    auto& values = node_label_values_[key];
    int& n = values[value];
    n += delta;
    if (n <= 0) values.erase(value);
    if (values.empty()) node_label_values_.erase(key);
    size_t& with = nodes_with_label_[key];
    with = static_cast<size_t>(static_cast<int64_t>(with) + delta);
    if (with == 0) nodes_with_label_.erase(key);
  }
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
  CountNodeLabelsLocked(*state->node, -1);
  state->node.reset();
  {
    std::lock_guard index_lock(index_mu_);
    count_indexes_.clear();
  }
  RemoveNodeStateIfEmpty(name);
}

void SchedulerCache::RemovePodLocked(const std::string& key) {
  auto it = pods_.find(key);
  if (it == pods_.end()) return;
  std::string node = it->second.pod->node_name;
  auto n = nodes_.find(node);
  if (n != nodes_.end()) {
    if (n->second->RemovePod(key)) IndexPodLocked(*it->second.pod, *n->second, -1);
    RemoveNodeStateIfEmpty(node);
  }
  assumed_deadlines_.erase(key);
  pods_.erase(it);
}

void SchedulerCache::AddPodLocked(std::shared_ptr<const PodInfo> pod, bool assumed) {
  std::string key = pod->Key();
  NodeState& state = NodeFor(pod->node_name);
  IndexPodLocked(*pod, state, +1);
  state.AddPod(pod);
  pods_[key] = PodEntry{std::move(pod), assumed, false, {}};
}

void SchedulerCache::IndexPodLocked(const PodInfo& pod, NodeState& state, int delta) {
  if (state.node) {
    std::lock_guard index_lock(index_mu_);
    for (auto& [sig, index] : count_indexes_) {
      auto label = state.node->labels.find(index->topology_key);
      if (label == state.node->labels.end() || !IndexCounts(*index, pod)) continue;
      int64_t& n = index->by_domain[label->second];
      n += delta;
      if (n <= 0) index->by_domain.erase(label->second);
    }
  }
  for (const auto& term : pod.required_anti_affinity) {
    std::string sig = AntiAffinitySignature(term, pod.namespace_name);
    auto it = anti_affinity_groups_.find(sig);
    if (it == anti_affinity_groups_.end()) {
      if (delta < 0) continue;
      it = anti_affinity_groups_.emplace(sig, AntiAffinityGroup{term, pod.namespace_name, {}}).first;
    }
    int64_t& n = it->second.by_node[&state];
    n += delta;
    if (n <= 0) it->second.by_node.erase(&state);
    if (it->second.by_node.empty()) anti_affinity_groups_.erase(it);
  }
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
  AddPodLocked(std::make_shared<const PodInfo>(std::move(pod)), /*assumed=*/false);
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
  AddPodLocked(std::make_shared<const PodInfo>(std::move(pod)), /*assumed=*/true);
  return absl::OkStatus();
}

void SchedulerCache::FinishBinding(const std::string& key) {
  std::unique_lock lock(mu_);
  auto it = pods_.find(key);
  if (it == pods_.end() || !it->second.assumed) return;
  it->second.binding_finished = true;
  it->second.deadline = now_() + assumed_ttl_;
  assumed_deadlines_[key] = it->second.deadline;
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
  for (const auto& [key, deadline] : assumed_deadlines_) {
    if (now >= deadline) expired.push_back(key);
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

std::shared_ptr<const DomainCountIndex> SchedulerCache::MatchingPodsByDomain(const std::string& namespace_name,
                                                                             const LabelSelector& selector,
                                                                             const std::string& topology_key,
                                                                             bool skip_terminating) const {
  std::string sig = absl::StrCat(namespace_name, "\x1d", topology_key, "\x1d", skip_terminating ? "1" : "0");
  AppendSelector(sig, selector);
  std::lock_guard index_lock(index_mu_);
  auto it = count_indexes_.find(sig);
  if (it != count_indexes_.end()) {
    it->second->last_used = ++index_clock_;
    return it->second;
  }
  auto index = std::make_shared<DomainCountIndex>();
  index->namespace_name = namespace_name;
  index->selector = selector;
  index->topology_key = topology_key;
  index->skip_terminating = skip_terminating;
  index->last_used = ++index_clock_;
  for (const NodeState* state : node_order_) {
    auto label = state->node->labels.find(topology_key);
    if (label == state->node->labels.end()) continue;
    int64_t n = 0;
    for (const auto& p : state->pods) {
      if (IndexCounts(*index, *p)) ++n;
    }
    if (n > 0) index->by_domain[label->second] += n;
  }
  if (count_indexes_.size() >= kMaxCountIndexes) {
    auto oldest = count_indexes_.begin();
    for (auto i = count_indexes_.begin(); i != count_indexes_.end(); ++i) {
      if (i->second->last_used < oldest->second->last_used) oldest = i;
    }
    count_indexes_.erase(oldest);  // holders keep their shared_ptr
  }
  count_indexes_.emplace(std::move(sig), index);
  return index;
}

const std::unordered_map<std::string, int>* SchedulerCache::NodesByLabelValue(const std::string& key) const {
  auto it = node_label_values_.find(key);
  return it == node_label_values_.end() ? nullptr : &it->second;
}

size_t SchedulerCache::NodesWithLabel(const std::string& key) const {
  auto it = nodes_with_label_.find(key);
  return it == nodes_with_label_.end() ? 0 : it->second;
}

size_t SchedulerCache::PodCount() const {
  std::shared_lock lock(mu_);
  return pods_.size();
}

}  // namespace kelpie::scheduler
