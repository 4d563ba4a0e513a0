// The plugin model of kube-scheduler's framework, reduced to the extension
// points the built-in plugins here use: PreFilter/Filter and PreScore/Score/
// NormalizeScore. Plugins see decoded structs and the cache, never JSON.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "orchestrator/scheduler/node_state.h"
#include "orchestrator/scheduler/pod_info.h"
#include "orchestrator/scheduler/scheduler_cache.h"

namespace kelpie::scheduler {

inline constexpr int64_t kMaxNodeScore = 100;

struct PluginStatus {
  enum class Code { kSuccess, kUnschedulable, kUnschedulableAndUnresolvable, kError };
  Code code = Code::kSuccess;
  std::vector<std::string> reasons;

  bool ok() const { return code == Code::kSuccess; }
  static PluginStatus Success() { return {}; }
  static PluginStatus Unschedulable(std::string reason) { return {Code::kUnschedulable, {std::move(reason)}}; }
  static PluginStatus Unresolvable(std::string reason) {
    return {Code::kUnschedulableAndUnresolvable, {std::move(reason)}};
  }
};

// Per-attempt data a plugin computes in PreFilter/PreScore and reads in
// Filter/Score (which run concurrently over nodes, so read-only there).
struct PluginState {
  virtual ~PluginState() = default;
};

class CycleState {
 public:
  void Write(const std::string& plugin, std::unique_ptr<PluginState> state) { states_[plugin] = std::move(state); }
  template <typename T>
  const T* Read(const std::string& plugin) const {
    auto it = states_.find(plugin);
    return it == states_.end() ? nullptr : static_cast<const T*>(it->second.get());
  }

 private:
  std::map<std::string, std::unique_ptr<PluginState>> states_;
};

// The cluster as a scheduling attempt sees it; valid while the cache's read
// lock is held.
struct ClusterView {
  const SchedulerCache& cache;
  const std::vector<NodeState*>& nodes;
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual std::string Name() const = 0;

  virtual bool IsFilter() const { return false; }
  virtual PluginStatus PreFilter(CycleState&, const PodInfo&, const ClusterView&) const { return {}; }
  virtual PluginStatus Filter(const CycleState&, const PodInfo&, const NodeState&) const { return {}; }

  virtual bool IsScore() const { return false; }
  virtual void PreScore(CycleState&, const PodInfo&, const ClusterView&, const std::vector<const NodeState*>&) const {}
  virtual int64_t Score(const CycleState&, const PodInfo&, const NodeState&) const { return 0; }
  // Rescales raw scores into 0..kMaxNodeScore; default leaves them as they are.
  virtual void NormalizeScore(const CycleState&, const PodInfo&, std::vector<int64_t>&) const {}
};

// kube-scheduler's DefaultNormalizeScore: scale so the best is kMaxNodeScore,
// reversed when lower raw scores are better.
void DefaultNormalizeScore(std::vector<int64_t>& scores, bool reverse);

// Whether `pod` tolerates `taint`.
bool Tolerates(const std::vector<Toleration>& tolerations, const Taint& taint);

// The namespaces a pod affinity term of `owner_namespace`'s pod selects, and
// whether `candidate` (a pod) matches the term.
bool AffinityTermMatches(const PodAffinityTerm& term, const std::string& owner_namespace, const PodInfo& candidate,
                         const SchedulerCache& cache);

}  // namespace kelpie::scheduler
