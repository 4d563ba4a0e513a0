// Registers this machine as a Node and keeps it alive, as the kubelet does:
// creates (or reconciles) the Node object with its capacity, addresses,
// labels and conditions; renews a coordination.k8s.io Lease in
// kube-node-lease every renew interval (what the node lifecycle controller
// watches); and re-posts the node status when it changes or every status
// interval.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "orchestrator/kubelet/node_facts.h"

namespace kelpie::kubelet {

// The calls the registrar makes to the API server. Errors carry the HTTP
// meaning in their code: kNotFound, kAlreadyExists, kFailedPrecondition
// (conflict), others for transport trouble.
class NodeApi {
 public:
  virtual ~NodeApi() = default;
  virtual absl::StatusOr<nlohmann::json> GetNode(const std::string& name) = 0;
  virtual absl::StatusOr<nlohmann::json> CreateNode(const nlohmann::json& node) = 0;
  // JSON merge patches of the Node and of its status subresource.
  virtual absl::StatusOr<nlohmann::json> PatchNode(const std::string& name, const nlohmann::json& patch) = 0;
  virtual absl::StatusOr<nlohmann::json> PatchNodeStatus(const std::string& name, const nlohmann::json& patch) = 0;
  virtual absl::StatusOr<nlohmann::json> GetLease(const std::string& name_space, const std::string& name) = 0;
  virtual absl::StatusOr<nlohmann::json> CreateLease(const nlohmann::json& lease) = 0;
  // PUT with the lease's resourceVersion (optimistic concurrency).
  virtual absl::StatusOr<nlohmann::json> UpdateLease(const nlohmann::json& lease) = 0;
};

// Whether the node can run pods right now (runtime and network up).
struct NodeReadiness {
  bool ready = true;
  std::string reason = "KubeletReady";
  std::string message = "kubelet is posting ready status";
};

struct NodeRegistrarOptions {
  NodeSettings settings;
  std::chrono::seconds lease_duration{40};
  std::chrono::seconds renew_interval{10};
  std::chrono::seconds status_interval{60};
  std::function<NodeReadiness()> readiness = [] { return NodeReadiness{}; };
};

class NodeRegistrar {
 public:
  NodeRegistrar(NodeApi& api, NodeFacts facts, NodeRegistrarOptions options);

  // Creates the Node, or brings an existing one up to date (labels this
  // node sets, capacity, addresses, system info), and posts its status.
  absl::Status Register();
  // Creates or renews the node's Lease.
  absl::Status RenewLease();
  // Posts conditions and capacity (only the parts that changed move their
  // lastTransitionTime).
  absl::Status PostStatus();

  // Registers (retrying), then renews and posts until Stop().
  void Run();
  void Stop();

 private:
  nlohmann::json Conditions(const nlohmann::json& current);

  NodeApi& api_;
  const NodeFacts facts_;
  const NodeRegistrarOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace kelpie::kubelet
