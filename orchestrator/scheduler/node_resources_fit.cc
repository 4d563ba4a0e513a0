// NodeResourcesFit: the pod's effective requests must fit in what the node
// has left (allocatable minus the requests of pods bound or assumed there),
// and the pod count below allocatable pods. Scoring prefers the least (or,
// configured, the most) allocated node over the weighted resources, counting
// unset cpu/memory requests as 100m/200Mi as kube-scheduler does.
#include "absl/strings/str_cat.h"
#include "orchestrator/scheduler/plugins.h"

namespace kelpie::scheduler {
namespace {

class NodeResourcesFit final : public Plugin {
 public:
  NodeResourcesFit(ScoringStrategy strategy, std::map<std::string, int64_t> weights)
      : strategy_(strategy), weights_(std::move(weights)) {}
  std::string Name() const override { return "NodeResourcesFit"; }
  bool IsFilter() const override { return true; }

  PluginStatus Filter(const CycleState&, const PodInfo& pod, const NodeState& node) const override {
    PluginStatus status;
    const Resources& alloc = node.node->allocatable;
    const Resources& used = node.requested;
    bool unresolvable = false;
    auto insufficient = [&](const std::string& reason, int64_t want, int64_t capacity) {
      status.code = PluginStatus::Code::kUnschedulable;
      status.reasons.push_back(reason);
      if (want > capacity) unresolvable = true;  // would not fit even on an empty node
    };
    if (static_cast<int64_t>(node.pods.size()) + 1 > alloc.pods) insufficient("Too many pods", 1, alloc.pods);
    const Resources& r = pod.requests;
    if (r.milli_cpu > 0 && r.milli_cpu > alloc.milli_cpu - used.milli_cpu) {
      insufficient("Insufficient cpu", r.milli_cpu, alloc.milli_cpu);
    }
    if (r.memory > 0 && r.memory > alloc.memory - used.memory) insufficient("Insufficient memory", r.memory, alloc.memory);
    if (r.ephemeral_storage > 0 && r.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage) {
      insufficient("Insufficient ephemeral-storage", r.ephemeral_storage, alloc.ephemeral_storage);
    }
    for (const auto& [name, want] : r.scalar) {
      if (want == 0) continue;
      auto a = alloc.scalar.find(name);
      int64_t have = a == alloc.scalar.end() ? 0 : a->second;
      auto u = used.scalar.find(name);
      int64_t taken = u == used.scalar.end() ? 0 : u->second;
      if (want > have - taken) insufficient(absl::StrCat("Insufficient ", name), want, have);
    }
    if (!status.ok() && unresolvable) status.code = PluginStatus::Code::kUnschedulableAndUnresolvable;
    return status;
  }

  bool IsScore() const override { return true; }
  int64_t Score(const CycleState&, const PodInfo& pod, const NodeState& node) const override {
    int64_t total = 0;
    int64_t weight_sum = 0;
    for (const auto& [resource, weight] : weights_) {
      int64_t capacity = 0;
      int64_t requested = 0;
      Amounts(resource, pod, node, &capacity, &requested);
      if (capacity == 0) continue;
      int64_t score;
      if (strategy_ == ScoringStrategy::kLeastAllocated) {
        score = requested > capacity ? 0 : (capacity - requested) * kMaxNodeScore / capacity;
      } else {
        score = std::min(requested, capacity) * kMaxNodeScore / capacity;
      }
      total += score * weight;
      weight_sum += weight;
    }
    return weight_sum == 0 ? 0 : total / weight_sum;
  }

 private:
  static void Amounts(const std::string& resource, const PodInfo& pod, const NodeState& node, int64_t* capacity,
                      int64_t* requested) {
    const Resources& alloc = node.node->allocatable;
    if (resource == "cpu") {
      *capacity = alloc.milli_cpu;
      *requested = node.non_zero_requested.milli_cpu + pod.non_zero_requests.milli_cpu;
    } else if (resource == "memory") {
      *capacity = alloc.memory;
      *requested = node.non_zero_requested.memory + pod.non_zero_requests.memory;
    } else if (resource == "ephemeral-storage") {
      *capacity = alloc.ephemeral_storage;
      *requested = node.requested.ephemeral_storage + pod.requests.ephemeral_storage;
    } else {
      auto a = alloc.scalar.find(resource);
      *capacity = a == alloc.scalar.end() ? 0 : a->second;
      auto u = node.requested.scalar.find(resource);
      auto p = pod.requests.scalar.find(resource);
      *requested = (u == node.requested.scalar.end() ? 0 : u->second) + (p == pod.requests.scalar.end() ? 0 : p->second);
    }
  }

  ScoringStrategy strategy_;
  std::map<std::string, int64_t> weights_;
};

}  // namespace

std::unique_ptr<Plugin> NewNodeResourcesFit(ScoringStrategy strategy, std::map<std::string, int64_t> weights) {
  return std::make_unique<NodeResourcesFit>(strategy, std::move(weights));
}

}  // namespace kelpie::scheduler
