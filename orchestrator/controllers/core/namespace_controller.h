// Namespace controller ("namespace"): a namespace being deleted (it carries
// deletionTimestamp and the `kubernetes` finalizer in spec.finalizers) has
// every namespaced resource the API serves deleted inside it (deletecollection
// per resource), is checked until nothing is left (objects with finalizers
// wait for whoever owns those, e.g. the garbage collector), and then loses
// the `kubernetes` finalizer, which lets the API server remove it.
#pragma once

#include <string>

#include "orchestrator/controllers/core/queue_controller.h"

namespace kelpie::controllers {

class NamespaceController : public QueueController {
 public:
  explicit NamespaceController(ControllerContext& ctx);

 protected:
  absl::Status Sync(const std::string& key) override;

 private:
  SharedInformer& namespaces_;
};

}  // namespace kelpie::controllers
