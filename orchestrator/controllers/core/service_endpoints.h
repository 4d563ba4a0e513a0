// What the Endpoints and EndpointSlice controllers share: which pods a
// Service selects, whether a pod is an endpoint and is ready, and the port a
// service port reaches on a given pod (named target ports resolve per pod).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "orchestrator/api/selector.h"
#include "orchestrator/controllers/object_store.h"
#include "orchestrator/controllers/shared_informer.h"
#include "orchestrator/controllers/work_queue.h"

namespace kelpie::controllers {

// The Service's pod selector; nullopt when it has none (its endpoints are
// managed by someone else) or it is an ExternalName Service.
std::optional<api::LabelSelector> ServicePodSelector(const nlohmann::json& service);

// Has an IP and is not Succeeded/Failed; terminating pods count only when
// `include_terminating`.
bool PodIsEndpoint(const nlohmann::json& pod, bool include_terminating);
// The pod's Ready condition is True.
bool PodIsReady(const nlohmann::json& pod);
bool PodIsTerminating(const nlohmann::json& pod);

// The port `service_port` (an element of spec.ports) reaches on `pod`: its
// targetPort number, or the pod's container port of that name and protocol;
// defaults to the service port. nullopt when a named port is not on the pod.
std::optional<int> ResolveTargetPort(const nlohmann::json& service_port, const nlohmann::json& pod);

// The fields of a pod the endpoint controllers react to, to ignore
// irrelevant updates (e.g. container restarts counts).
nlohmann::json PodEndpointProjection(const nlohmann::json& pod);

// Keys ("ns/name") of the services in `services` (indexed by namespace)
// whose selector matches `pod`'s labels.
std::vector<std::string> ServicesSelectingPod(const ObjectStore& services, const nlohmann::json& pod);

// The index of an informer's store by namespace (NamespaceIndex).
inline constexpr char kNamespaceIndex[] = "namespace";

// How EnqueueServicesOnChange queues work.
struct ServiceChangeOptions {
  // Pod-triggered syncs wait this long, so a burst of pod changes is written
  // once (kube-controller-manager's --endpoint-updates-batch-period); 0:
  // at once. Service changes are never delayed.
  std::chrono::milliseconds pod_batch_period{0};
  // Called (on the informer thread, before the key is queued) with the
  // Service key and the changed pod's key, or with nullptr when the Service
  // itself changed: lets a controller keep incremental state.
  std::function<void(const std::string& service_key, const std::string* pod_key)> on_change;
};

// Queues a Service's key on every change to it, and the keys of the
// Services selecting a pod whenever the pod's endpoint-relevant fields
// change (both its old and new Services when its labels change). Indexes
// both stores by namespace. Before the informers start.
void EnqueueServicesOnChange(SharedInformer& services, SharedInformer& pods, WorkQueue& queue,
                             ServiceChangeOptions options = {});

}  // namespace kelpie::controllers
