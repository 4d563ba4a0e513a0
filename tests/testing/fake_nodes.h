// Fake nodes for controller tests and benchmarks: Node objects without a
// kubelet, and an agent that does what the scheduler and kubelets would do
// to pods, through the API server: binds unscheduled pods to a fake node
// (the one a DaemonSet pod's nodeAffinity on metadata.name names, otherwise
// round-robin), reports bound pods Running and Ready through pods/status
// (or the phase a test chooses), and finishes graceful deletions (a pod with
// a deletionTimestamp is deleted with grace period 0).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include <nlohmann/json.hpp>

#include "orchestrator/client/rest_client.h"

namespace kelpie::controllers {
class SharedInformer;
}

namespace kelpie::testing {

struct FakeNodesOptions {
  // The phase a bound pod is reported in: "Running" (and Ready),
  // "Succeeded", "Failed", or "" to leave the pod as it is. Default: Running.
  std::function<std::string(const nlohmann::json& pod)> phase_for;
  // Whether Running pods are reported Ready (tests flip it to hold a rollout).
  bool ready = true;
  int workers = 4;
};

class FakeNodes {
 public:
  FakeNodes(client::RestClient& client, FakeNodesOptions options = {});
  ~FakeNodes();
  FakeNodes(const FakeNodes&) = delete;
  FakeNodes& operator=(const FakeNodes&) = delete;

  // Creates a Ready Node `name` (with `labels`, `taints`).
  absl::Status AddNode(const std::string& name, const nlohmann::json& labels = nlohmann::json::object(),
                       const nlohmann::json& taints = nlohmann::json::array());
  // Deletes the Node object and, as the pod garbage collector would, the
  // pods bound to it.
  absl::Status RemoveNode(const std::string& name);

  // Starts watching pods (after nodes were added or not).
  absl::Status Start();
  void Stop();

  // Whether newly Running pods are reported Ready; re-examines every pod.
  void SetReady(bool ready);
  // Reports one pod's phase and readiness through pods/status.
  absl::Status SetPodStatus(const std::string& ns, const std::string& name, const std::string& phase, bool ready);

  int64_t bindings() const { return bindings_.load(); }

 private:
  void Enqueue(const std::string& key);
  void Work();
  void Process(const std::string& key);
  std::string ChooseNode(const nlohmann::json& pod);

  client::RestClient& client_;
  FakeNodesOptions options_;
  std::unique_ptr<controllers::SharedInformer> pods_;
  std::atomic<bool> ready_;
  std::atomic<int64_t> bindings_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::set<std::string> queued_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;

  std::mutex nodes_mu_;
  std::vector<std::string> nodes_;
  size_t next_node_ = 0;
};

}  // namespace kelpie::testing
