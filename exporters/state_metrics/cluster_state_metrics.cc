#include "exporters/state_metrics/cluster_state_metrics.h"

#include <array>
#include <cctype>
#include <utility>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "orchestrator/api/quantity.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/informer_factory.h"

namespace kelpie::state_metrics {
namespace {

using nlohmann::json;
using prometheus::ClientMetric;
using prometheus::MetricType;

constexpr std::array<FamilyInfo, static_cast<size_t>(Family::kCount)> kFamilies = {{
    {"kube_pod_info", "Information about pod.", MetricType::Gauge},
    {"kube_pod_created", "Unix creation timestamp", MetricType::Gauge},
    {"kube_pod_owner", "Information about the Pod's owner.", MetricType::Gauge},
    {"kube_pod_status_phase", "The pods current phase.", MetricType::Gauge},
    {"kube_pod_status_ready", "Describes whether the pod is ready to serve requests.", MetricType::Gauge},
    {"kube_pod_status_scheduled", "Describes the status of the scheduling process for the pod.", MetricType::Gauge},
    {"kube_pod_container_info", "Information about a container in a pod.", MetricType::Gauge},
    {"kube_pod_container_resource_requests",
     "The number of requested request resource by a container. It is recommended to use the "
     "kube_pod_resource_requests metric exposed by kube-scheduler instead, as it is more precise.",
     MetricType::Gauge},
    {"kube_pod_container_resource_limits",
     "The number of requested limit resource by a container. It is recommended to use the "
     "kube_pod_resource_limits metric exposed by kube-scheduler instead, as it is more precise.",
     MetricType::Gauge},
    {"kube_pod_container_status_restarts_total", "The number of container restarts per container.",
     MetricType::Counter},
    {"kube_pod_container_status_ready", "Describes whether the containers readiness check succeeded.",
     MetricType::Gauge},
    {"kube_pod_container_status_running", "Describes whether the container is currently in running state.",
     MetricType::Gauge},
    {"kube_pod_container_status_waiting", "Describes whether the container is currently in waiting state.",
     MetricType::Gauge},
    {"kube_pod_container_status_waiting_reason", "Describes the reason the container is currently in waiting state.",
     MetricType::Gauge},
    {"kube_pod_container_status_terminated", "Describes whether the container is currently in terminated state.",
     MetricType::Gauge},
    {"kube_pod_container_status_terminated_reason",
     "Describes the reason the container is currently in terminated state.", MetricType::Gauge},
    {"kube_deployment_created", "Unix creation timestamp", MetricType::Gauge},
    {"kube_deployment_spec_replicas", "Number of desired pods for a deployment.", MetricType::Gauge},
    {"kube_deployment_spec_paused", "Whether the deployment is paused and will not be processed by the deployment "
                                    "controller.",
     MetricType::Gauge},
    {"kube_deployment_metadata_generation", "Sequence number representing a specific generation of the desired "
                                            "state.",
     MetricType::Gauge},
    {"kube_deployment_status_observed_generation", "The generation observed by the deployment controller.",
     MetricType::Gauge},
    {"kube_deployment_status_replicas", "The number of replicas per deployment.", MetricType::Gauge},
    {"kube_deployment_status_replicas_ready", "The number of ready replicas per deployment.", MetricType::Gauge},
    {"kube_deployment_status_replicas_available", "The number of available replicas per deployment.",
     MetricType::Gauge},
    {"kube_deployment_status_replicas_unavailable", "The number of unavailable replicas per deployment.",
     MetricType::Gauge},
    {"kube_deployment_status_replicas_updated", "The number of updated replicas per deployment.", MetricType::Gauge},
    {"kube_deployment_status_condition", "The current status conditions of a deployment.", MetricType::Gauge},
    {"kube_node_info", "Information about a cluster node.", MetricType::Gauge},
    {"kube_node_created", "Unix creation timestamp", MetricType::Gauge},
    {"kube_node_spec_unschedulable", "Whether a node can schedule new pods.", MetricType::Gauge},
    {"kube_node_spec_taint", "The taint of a cluster node.", MetricType::Gauge},
    {"kube_node_status_condition", "The condition of a cluster node.", MetricType::Gauge},
    {"kube_node_status_capacity", "The capacity for different resources of a node.", MetricType::Gauge},
    {"kube_node_status_allocatable", "The allocatable for different resources of a node that are available for "
                                     "scheduling.",
     MetricType::Gauge},
}};

using Labels = std::vector<ClientMetric::Label>;

std::string Str(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

double Num(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_number() ? it->get<double>() : 0.0;
}

const json& Child(const json& obj, const char* key) {
  static const json kEmpty = json::object();
  auto it = obj.find(key);
  return it != obj.end() && it->is_object() ? *it : kEmpty;
}

const json& Array(const json& obj, const char* key) {
  static const json kEmpty = json::array();
  auto it = obj.find(key);
  return it != obj.end() && it->is_array() ? *it : kEmpty;
}

void Add(std::vector<Sample>& out, Family family, Labels labels, double value) {
  Sample s{family, {}};
  s.metric.label = std::move(labels);
  if (InfoOf(family).type == MetricType::Counter) {
    s.metric.counter.value = value;
  } else {
    s.metric.gauge.value = value;
  }
  out.push_back(std::move(s));
}

Labels With(Labels base, std::initializer_list<ClientMetric::Label> more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

// Unix seconds of an RFC 3339 time; nullopt when absent or malformed.
std::optional<double> UnixSeconds(const std::string& text) {
  absl::Time t;
  std::string err;
  if (text.empty() || !absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return std::nullopt;
  return absl::ToDoubleSeconds(t - absl::UnixEpoch());
}

void AddCreated(std::vector<Sample>& out, Family family, const Labels& labels, const json& meta) {
  if (auto t = UnixSeconds(Str(meta, "creationTimestamp"))) Add(out, family, labels, *t);
}

// A condition status as the lower-case label value kube-state-metrics
// writes (under `label`), one series per possible value with 1 on the
// current one.
void AddConditionStatus(std::vector<Sample>& out, Family family, const Labels& labels, const std::string& status,
                        const char* label = "status") {
  std::string lower;
  for (char c : status) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* v : {"true", "false", "unknown"}) {
    Add(out, family, With(labels, {{label, v}}), lower == v ? 1 : 0);
  }
}

std::string SanitizeLabelValueName(const std::string& name) {
  std::string out;
  for (char c : name) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

void AddResources(std::vector<Sample>& out, Family family, const Labels& labels, const json& resources) {
  if (!resources.is_object()) return;
  for (const auto& [name, quantity] : resources.items()) {
    std::string text = quantity.is_string() ? quantity.get<std::string>()
                                            : (quantity.is_number() ? quantity.dump() : std::string());
    if (auto v = ToResourceValue(name, text)) {
      Add(out, family, With(labels, {{"resource", v->resource}, {"unit", v->unit}}), v->value);
    }
  }
}

}  // namespace

const FamilyInfo& InfoOf(Family family) { return kFamilies[static_cast<size_t>(family)]; }

std::optional<ResourceValue> ToResourceValue(const std::string& name, const std::string& quantity) {
  auto q = api::Quantity::Parse(quantity);
  if (!q.ok()) return std::nullopt;
  ResourceValue v;
  v.resource = SanitizeLabelValueName(name);
  if (name == "cpu") {
    v.unit = "core";
    v.value = static_cast<double>(q->MilliValue()) / 1000.0;
  } else if (name == "memory" || name == "ephemeral-storage" || absl::StartsWith(name, "hugepages-")) {
    v.unit = "byte";
    v.value = static_cast<double>(q->Value());
  } else {
    v.unit = "integer";
    v.value = static_cast<double>(q->Value());
  }
  return v;
}

std::vector<Sample> PodSamples(const json& pod) {
  std::vector<Sample> out;
  const json& meta = Child(pod, "metadata");
  const json& spec = Child(pod, "spec");
  const json& status = Child(pod, "status");
  const Labels base = {{"namespace", Str(meta, "namespace")}, {"pod", Str(meta, "name")}, {"uid", Str(meta, "uid")}};
  const std::string node = Str(spec, "nodeName");

  std::string created_by_kind = "<none>", created_by_name = "<none>";
  const json& owners = Array(meta, "ownerReferences");
  for (const auto& o : owners) {
    if (o.value("controller", false)) {
      created_by_kind = Str(o, "kind");
      created_by_name = Str(o, "name");
    }
  }
  Add(out, Family::kPodInfo,
      With(base, {{"host_ip", Str(status, "hostIP")},
                  {"pod_ip", Str(status, "podIP")},
                  {"node", node},
                  {"created_by_kind", created_by_kind},
                  {"created_by_name", created_by_name},
                  {"priority_class", Str(spec, "priorityClassName")},
                  {"host_network", spec.value("hostNetwork", false) ? "true" : "false"}}),
      1);
  AddCreated(out, Family::kPodCreated, base, meta);
  if (owners.empty()) {
    Add(out, Family::kPodOwner,
        With(base, {{"owner_kind", "<none>"}, {"owner_name", "<none>"}, {"owner_is_controller", "<none>"}}), 1);
  }
  for (const auto& o : owners) {
    Add(out, Family::kPodOwner,
        With(base, {{"owner_kind", Str(o, "kind")},
                    {"owner_name", Str(o, "name")},
                    {"owner_is_controller", o.value("controller", false) ? "true" : "false"}}),
        1);
  }
  const std::string phase = Str(status, "phase");
  if (!phase.empty()) {
    for (const char* p : {"Pending", "Succeeded", "Failed", "Unknown", "Running"}) {
      Add(out, Family::kPodStatusPhase, With(base, {{"phase", p}}), phase == p ? 1 : 0);
    }
  }
  for (const auto& c : Array(status, "conditions")) {
    const std::string type = Str(c, "type");
    if (type != "Ready" && type != "PodScheduled") continue;
    // kube-state-metrics names the status label "condition" for pods.
    AddConditionStatus(out, type == "Ready" ? Family::kPodStatusReady : Family::kPodStatusScheduled, base,
                       Str(c, "status"), "condition");
  }
  for (const auto& c : Array(spec, "containers")) {
    const Labels cl = With(base, {{"container", Str(c, "name")}, {"node", node}});
    const json& resources = Child(c, "resources");
    AddResources(out, Family::kPodContainerResourceRequests, cl, Child(resources, "requests"));
    AddResources(out, Family::kPodContainerResourceLimits, cl, Child(resources, "limits"));
  }
  std::map<std::string, std::string> image_spec;
  for (const auto& c : Array(spec, "containers")) image_spec[Str(c, "name")] = Str(c, "image");
  for (const auto& cs : Array(status, "containerStatuses")) {
    const std::string name = Str(cs, "name");
    const Labels cl = With(base, {{"container", name}});
    Add(out, Family::kPodContainerInfo,
        With(cl, {{"image_spec", image_spec[name]},
                  {"image", Str(cs, "image")},
                  {"image_id", Str(cs, "imageID")},
                  {"container_id", Str(cs, "containerID")}}),
        1);
    Add(out, Family::kPodContainerStatusRestartsTotal, cl, Num(cs, "restartCount"));
    Add(out, Family::kPodContainerStatusReady, cl, cs.value("ready", false) ? 1 : 0);
    const json& state = Child(cs, "state");
    const bool running = state.contains("running");
    const bool waiting = state.contains("waiting");
    const bool terminated = state.contains("terminated");
    Add(out, Family::kPodContainerStatusRunning, cl, running ? 1 : 0);
    Add(out, Family::kPodContainerStatusWaiting, cl, waiting ? 1 : 0);
    if (waiting) {
      const std::string reason = Str(Child(state, "waiting"), "reason");
      if (!reason.empty()) Add(out, Family::kPodContainerStatusWaitingReason, With(cl, {{"reason", reason}}), 1);
    }
    Add(out, Family::kPodContainerStatusTerminated, cl, terminated ? 1 : 0);
    if (terminated) {
      const std::string reason = Str(Child(state, "terminated"), "reason");
      if (!reason.empty()) Add(out, Family::kPodContainerStatusTerminatedReason, With(cl, {{"reason", reason}}), 1);
    }
  }
  return out;
}

std::vector<Sample> DeploymentSamples(const json& deployment) {
  std::vector<Sample> out;
  const json& meta = Child(deployment, "metadata");
  const json& spec = Child(deployment, "spec");
  const json& status = Child(deployment, "status");
  const Labels base = {{"namespace", Str(meta, "namespace")}, {"deployment", Str(meta, "name")}};
  AddCreated(out, Family::kDeploymentCreated, base, meta);
  // spec.replicas defaults to 1 when absent.
  Add(out, Family::kDeploymentSpecReplicas, base, spec.contains("replicas") ? Num(spec, "replicas") : 1);
  Add(out, Family::kDeploymentSpecPaused, base, spec.value("paused", false) ? 1 : 0);
  Add(out, Family::kDeploymentMetadataGeneration, base, Num(meta, "generation"));
  Add(out, Family::kDeploymentStatusObservedGeneration, base, Num(status, "observedGeneration"));
  Add(out, Family::kDeploymentStatusReplicas, base, Num(status, "replicas"));
  Add(out, Family::kDeploymentStatusReplicasReady, base, Num(status, "readyReplicas"));
  Add(out, Family::kDeploymentStatusReplicasAvailable, base, Num(status, "availableReplicas"));
  Add(out, Family::kDeploymentStatusReplicasUnavailable, base, Num(status, "unavailableReplicas"));
  Add(out, Family::kDeploymentStatusReplicasUpdated, base, Num(status, "updatedReplicas"));
  for (const auto& c : Array(status, "conditions")) {
    AddConditionStatus(out, Family::kDeploymentStatusCondition, With(base, {{"condition", Str(c, "type")}}),
                       Str(c, "status"));
  }
  return out;
}

std::vector<Sample> NodeSamples(const json& node) {
  std::vector<Sample> out;
  const json& meta = Child(node, "metadata");
  const json& spec = Child(node, "spec");
  const json& status = Child(node, "status");
  const Labels base = {{"node", Str(meta, "name")}};
  const json& info = Child(status, "nodeInfo");
  std::string internal_ip;
  for (const auto& a : Array(status, "addresses")) {
    if (Str(a, "type") == "InternalIP" && internal_ip.empty()) internal_ip = Str(a, "address");
  }
  Add(out, Family::kNodeInfo,
      With(base, {{"kernel_version", Str(info, "kernelVersion")},
                  {"os_image", Str(info, "osImage")},
                  {"container_runtime_version", Str(info, "containerRuntimeVersion")},
                  {"kubelet_version", Str(info, "kubeletVersion")},
                  {"kubeproxy_version", Str(info, "kubeProxyVersion")},
                  {"provider_id", Str(spec, "providerID")},
                  {"pod_cidr", Str(spec, "podCIDR")},
                  {"system_uuid", Str(info, "systemUUID")},
                  {"internal_ip", internal_ip}}),
      1);
  AddCreated(out, Family::kNodeCreated, base, meta);
  Add(out, Family::kNodeSpecUnschedulable, base, spec.value("unschedulable", false) ? 1 : 0);
  for (const auto& t : Array(spec, "taints")) {
    Add(out, Family::kNodeSpecTaint,
        With(base, {{"key", Str(t, "key")}, {"value", Str(t, "value")}, {"effect", Str(t, "effect")}}), 1);
  }
  for (const auto& c : Array(status, "conditions")) {
    AddConditionStatus(out, Family::kNodeStatusCondition, With(base, {{"condition", Str(c, "type")}}),
                       Str(c, "status"));
  }
  AddResources(out, Family::kNodeStatusCapacity, base, Child(status, "capacity"));
  AddResources(out, Family::kNodeStatusAllocatable, base, Child(status, "allocatable"));
  return out;
}

namespace {

std::string KeyOf(const json& obj) {
  const json& meta = Child(obj, "metadata");
  const std::string ns = Str(meta, "namespace");
  return ns.empty() ? Str(meta, "name") : ns + "/" + Str(meta, "name");
}

}  // namespace

// The informers and the client they share; stopped before the samples go.
struct ClusterStateMetrics::Watchers {
  std::unique_ptr<client::RestClient> client;
  std::unique_ptr<controllers::SharedInformerFactory> informers;
};

ClusterStateMetrics::ClusterStateMetrics() = default;
ClusterStateMetrics::~ClusterStateMetrics() { Stop(); }

absl::StatusOr<std::unique_ptr<ClusterStateMetrics>> ClusterStateMetrics::Start(
    http::HttpClientOptions client_options) {
  auto client = client::RestClient::Create(std::move(client_options));
  if (!client.ok()) return client.status();
  auto metrics = std::make_unique<ClusterStateMetrics>();
  metrics->watchers_ = std::make_unique<Watchers>();
  metrics->watchers_->client = std::move(*client);
  metrics->watchers_->informers = std::make_unique<controllers::SharedInformerFactory>(*metrics->watchers_->client);
  ClusterStateMetrics* self = metrics.get();
  const std::pair<Kind, const client::ResourceRef*> kinds[] = {
      {Kind::kPod, &client::resources::kPods},
      {Kind::kDeployment, &client::resources::kDeployments},
      {Kind::kNode, &client::resources::kNodes},
  };
  for (const auto& [kind, ref] : kinds) {
    controllers::EventHandlers h;
    h.on_add = [self, kind = kind](const json& obj) { self->Upsert(kind, obj); };
    h.on_update = [self, kind = kind](const json&, const json& obj) { self->Upsert(kind, obj); };
    h.on_delete = [self, kind = kind](const json& obj, bool) { self->Remove(kind, obj); };
    metrics->watchers_->informers->For(*ref).AddEventHandler(std::move(h));
  }
  metrics->watchers_->informers->Start();
  return metrics;
}

void ClusterStateMetrics::Stop() {
  if (watchers_ && watchers_->informers) watchers_->informers->Stop();
}

void ClusterStateMetrics::Upsert(Kind kind, const json& obj) {
  std::vector<Sample> samples;
  switch (kind) {
    case Kind::kPod:
      samples = PodSamples(obj);
      break;
    case Kind::kDeployment:
      samples = DeploymentSamples(obj);
      break;
    case Kind::kNode:
      samples = NodeSamples(obj);
      break;
  }
  std::lock_guard<std::mutex> lock(mu_);
  samples_[kind][KeyOf(obj)] = std::move(samples);
}

void ClusterStateMetrics::Remove(Kind kind, const json& obj) {
  std::lock_guard<std::mutex> lock(mu_);
  samples_[kind].erase(KeyOf(obj));
}

std::vector<prometheus::MetricFamily> ClusterStateMetrics::Collect() const {
  std::vector<prometheus::MetricFamily> families(static_cast<size_t>(Family::kCount));
  for (size_t i = 0; i < families.size(); ++i) {
    families[i].name = kFamilies[i].name;
    families[i].help = kFamilies[i].help;
    families[i].type = kFamilies[i].type;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [kind, objects] : samples_) {
      for (const auto& [key, samples] : objects) {
        for (const auto& s : samples) families[static_cast<size_t>(s.family)].metric.push_back(s.metric);
      }
    }
  }
  // A family without series is left out, as kube-state-metrics does.
  std::vector<prometheus::MetricFamily> out;
  for (auto& f : families) {
    if (!f.metric.empty()) out.push_back(std::move(f));
  }
  return out;
}

}  // namespace kelpie::state_metrics
