// Node lifecycle controller ("nodelifecycle"), as kube-controller-manager's:
// every node_monitor_period it looks at each Node's heartbeats (its Lease in
// kube-node-lease and its Ready condition's lastHeartbeatTime). A node with
// no heartbeat for node_monitor_grace_period gets its conditions set to
// Unknown ("Kubelet stopped posting node status."), its pods marked not
// Ready, and the NoExecute taint node.kubernetes.io/unreachable (a node
// reporting Ready=False gets node.kubernetes.io/not-ready); taints go away
// once the node is Ready again. Pods on a node with NoExecute taints are
// evicted (deleted) when their toleration runs out: a matching toleration's
// tolerationSeconds, forever without one, and for the not-ready/unreachable
// taints the configured defaults when the pod has no toleration for them
// (what kube-apiserver's DefaultTolerationSeconds admission adds); other
// NoExecute taints without toleration evict at once. Events: NodeNotReady
// on the node, TaintManagerEviction on the pod.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "orchestrator/controllers/controller.h"

namespace kelpie::controllers {

struct NodeLifecycleOptions {
  std::chrono::milliseconds monitor_period{5000};
  std::chrono::milliseconds grace_period{40000};
  int64_t default_not_ready_toleration_seconds = 300;
  int64_t default_unreachable_toleration_seconds = 300;
};

inline constexpr char kUnreachableTaint[] = "node.kubernetes.io/unreachable";
inline constexpr char kNotReadyTaint[] = "node.kubernetes.io/not-ready";

// Seconds `pod` tolerates the NoExecute `taint` (nullopt: forever), given
// the default for not-ready/unreachable taints it has no toleration for.
std::optional<int64_t> TolerationSecondsFor(const nlohmann::json& pod, const nlohmann::json& taint,
                                            int64_t default_seconds);

class NodeLifecycleController : public Controller {
 public:
  NodeLifecycleController(ControllerContext& ctx, NodeLifecycleOptions options);
  ~NodeLifecycleController() override;

  std::string Name() const override { return "nodelifecycle"; }
  void Run(int workers) override;
  void Stop() override;

  // One pass over every node (the loop calls it each monitor period).
  void MonitorOnce();

 private:
  struct Health {
    std::string lease_renew;
    std::string ready_heartbeat;
    std::chrono::steady_clock::time_point probe;
  };
  void Loop();
  void MarkUnknown(const nlohmann::json& node);
  void MarkPodsNotReady(const std::string& node_name);
  void ReconcileTaints(const nlohmann::json& node, const std::string& ready);
  void EvictPods(const nlohmann::json& node);

  ControllerContext& ctx_;
  const NodeLifecycleOptions options_;
  SharedInformer& nodes_;
  SharedInformer& leases_;
  SharedInformer& pods_;

  std::map<std::string, Health> health_;  // by node name; loop thread only
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace kelpie::controllers
