// The contract every controller of the controller manager follows, so the
// manager (and `kelpie server`) can start and stop them uniformly.
//
// Lifecycle: a controller is constructed with its dependencies (REST client,
// informers from a SharedInformerFactory, an EventRecorder, a metrics
// registry) and registers its informer event handlers in the constructor,
// because handlers must be added before the factory starts the informers.
// The manager then starts the informers, waits for them to sync, calls
// Run() on every controller and, on shutdown, Stop().
#pragma once

#include <string>

#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/clock.h"
#include "orchestrator/controllers/event_recorder.h"
#include "orchestrator/controllers/informer_factory.h"

namespace prometheus {
class Registry;
}

namespace kelpie::controllers {

// What every controller is built from; owned by the controller manager and
// outliving the controllers.
struct ControllerContext {
  client::RestClient& client;
  SharedInformerFactory& informers;
  EventRecorder& recorder;
  const Clock& clock;
  prometheus::Registry* metrics = nullptr;  // null: no metrics
};

class Controller {
 public:
  virtual ~Controller() = default;
  // Stable name used in logs, metrics and the --controllers flag
  // (Kubernetes' names where one exists: "replicaset", "deployment",
  // "endpointslice", "namespace", "garbagecollector", ...).
  virtual std::string Name() const = 0;
  // Starts `workers` worker threads and returns. Informers have synced.
  virtual void Run(int workers) = 0;
  // Shuts the work queue down and joins the workers. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace kelpie::controllers
