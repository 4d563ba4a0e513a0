// ServiceAccount controller ("serviceaccount"): every active namespace has
// a `default` ServiceAccount; it is created when a namespace appears and
// again if someone deletes it. Tokens come from the TokenRequest API
// (serviceaccounts/token), as in Kubernetes since 1.24: no token Secret.
#pragma once

#include <string>

#include "orchestrator/controllers/core/queue_controller.h"

namespace kelpie::controllers {

class ServiceAccountController : public QueueController {
 public:
  explicit ServiceAccountController(ControllerContext& ctx);

 protected:
  absl::Status Sync(const std::string& key) override;

 private:
  SharedInformer& namespaces_;
  SharedInformer& accounts_;
};

}  // namespace kelpie::controllers
