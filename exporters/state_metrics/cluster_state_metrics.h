// kube-state-metrics-compatible families (kube_pod_*, kube_deployment_*,
// kube_node_*) computed from the cluster's objects, so that the Kubernetes
// dashboards and alerts people already use light up against a Kelpie
// server. Each object's series are computed once when its informer sees it
// change and kept as ready-made samples; a scrape only copies them out (no
// JSON is read at scrape time).
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/http/http_client.h"

namespace kelpie::state_metrics {

// The families, in the order a scrape lists them.
enum class Family {
  kPodInfo,
  kPodCreated,
  kPodOwner,
  kPodStatusPhase,
  kPodStatusReady,
  kPodStatusScheduled,
  kPodContainerInfo,
  kPodContainerResourceRequests,
  kPodContainerResourceLimits,
  kPodContainerStatusRestartsTotal,
  kPodContainerStatusReady,
  kPodContainerStatusRunning,
  kPodContainerStatusWaiting,
  kPodContainerStatusWaitingReason,
  kPodContainerStatusTerminated,
  kPodContainerStatusTerminatedReason,
  kDeploymentCreated,
  kDeploymentSpecReplicas,
  kDeploymentSpecPaused,
  kDeploymentMetadataGeneration,
  kDeploymentStatusObservedGeneration,
  kDeploymentStatusReplicas,
  kDeploymentStatusReplicasReady,
  kDeploymentStatusReplicasAvailable,
  kDeploymentStatusReplicasUnavailable,
  kDeploymentStatusReplicasUpdated,
  kDeploymentStatusCondition,
  kNodeInfo,
  kNodeCreated,
  kNodeSpecUnschedulable,
  kNodeSpecTaint,
  kNodeStatusCondition,
  kNodeStatusCapacity,
  kNodeStatusAllocatable,
  kCount,
};

// Name, help and type of a family.
struct FamilyInfo {
  const char* name;
  const char* help;
  prometheus::MetricType type;
};
const FamilyInfo& InfoOf(Family family);

// One series of one family.
struct Sample {
  Family family;
  prometheus::ClientMetric metric;
};

// The series of one object, as kube-state-metrics v2 writes them.
std::vector<Sample> PodSamples(const nlohmann::json& pod);
std::vector<Sample> DeploymentSamples(const nlohmann::json& deployment);
std::vector<Sample> NodeSamples(const nlohmann::json& node);

// kube-state-metrics' resource and unit labels for a resource name:
// cpu → ("cpu", "core", value in cores), memory/ephemeral-storage/hugepages-*
// → bytes, anything else an "integer" with '.', '/' and '-' made '_'.
struct ResourceValue {
  std::string resource;
  std::string unit;
  double value = 0;
};
std::optional<ResourceValue> ToResourceValue(const std::string& name, const std::string& quantity);

class ClusterStateMetrics final : public prometheus::Collectable {
 public:
  enum class Kind { kPod, kDeployment, kNode };

  ClusterStateMetrics();
  ~ClusterStateMetrics() override;

  // Lists and watches pods, deployments and nodes through the API server
  // reached with `client_options`. The families appear once each informer
  // has synced (before that a kind contributes no series).
  static absl::StatusOr<std::unique_ptr<ClusterStateMetrics>> Start(http::HttpClientOptions client_options);
  void Stop();

  // What the informers call; public so the series can be checked without a
  // server.
  void Upsert(Kind kind, const nlohmann::json& obj);
  void Remove(Kind kind, const nlohmann::json& obj);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Watchers;

  mutable std::mutex mu_;
  // kind → "namespace/name" → that object's series.
  std::map<Kind, std::map<std::string, std::vector<Sample>>> samples_;
  std::unique_ptr<Watchers> watchers_;
};

}  // namespace kelpie::state_metrics
