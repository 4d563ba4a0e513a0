// Endpoints controller ("endpoint"): the core/v1 Endpoints object of every
// Service with a selector, named as the Service: ready pods in addresses,
// not-ready ones in notReadyAddresses (all ready with
// publishNotReadyAddresses), terminating pods left out, one subset per set
// of resolved ports, at most 1000 addresses (more are truncated and the
// object annotated endpoints.kubernetes.io/over-capacity=truncated, as
// Kubernetes does). Written only when it changes; deleted with its Service.
// Services without a selector are left alone. Pod changes are written after
// `pod_batch_period` (--endpoint-updates-batch-period), so a burst of them
// costs one rewrite of a large object rather than one each.
#pragma once

#include <chrono>
#include <string>

#include "orchestrator/controllers/core/queue_controller.h"

namespace kelpie::controllers {

class EndpointsController : public QueueController {
 public:
  explicit EndpointsController(ControllerContext& ctx, int max_addresses = 1000,
                               std::chrono::milliseconds pod_batch_period = std::chrono::milliseconds(0));

 protected:
  absl::Status Sync(const std::string& key) override;

 private:

  const int max_addresses_;
  SharedInformer& services_;
  SharedInformer& pods_;
  SharedInformer& endpoints_;
};

}  // namespace kelpie::controllers
