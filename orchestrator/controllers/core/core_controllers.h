// The controllers of this folder as ControllerManager descriptors, with the
// kube-controller-manager flags that tune them.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "orchestrator/controllers/controller_manager.h"

namespace CLI {
class App;
}

namespace kelpie::controllers {

struct CoreControllerOptions {
  int max_endpoints_per_slice = 100;
  // Pod changes reach the Endpoints object this much later, batched.
  // Kubernetes defaults to 0; kelpie batches by default because the
  // Endpoints object of a large Service (up to 1,000 addresses) is rewritten
  // whole on every pod change while nothing in kelpie reads it (service
  // routing and DNS read EndpointSlices, which are not delayed).
  std::chrono::milliseconds endpoint_updates_batch_period{500};
  // Node lifecycle.
  std::chrono::milliseconds node_monitor_period{5000};
  std::chrono::milliseconds node_monitor_grace_period{40000};
  // Pods without a toleration for the not-ready / unreachable NoExecute
  // taints are evicted this long after the taint (kube-apiserver's
  // DefaultTolerationSeconds admission gives every pod such tolerations).
  int64_t default_not_ready_toleration_seconds = 300;
  int64_t default_unreachable_toleration_seconds = 300;
};

// endpoint, endpointslice, namespace, garbagecollector, serviceaccount,
// nodelifecycle.
std::vector<ControllerDescriptor> CoreControllers(const CoreControllerOptions& options);

struct CoreControllerFlags {
  int max_endpoints_per_slice = 100;
  std::string endpoint_updates_batch_period = "500ms";
  std::string node_monitor_period = "5s";
  std::string node_monitor_grace_period = "40s";
  int64_t default_not_ready_toleration_seconds = 300;
  int64_t default_unreachable_toleration_seconds = 300;
};
void AddCoreControllerFlags(CLI::App& app, CoreControllerFlags& flags);
absl::Status ApplyCoreControllerFlags(const CoreControllerFlags& flags, CoreControllerOptions* options);

}  // namespace kelpie::controllers
