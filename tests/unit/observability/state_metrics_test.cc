// The kube-state-metrics families computed from pod, deployment and node
// objects: names, label sets and values as kube-state-metrics v2 writes
// them, series replaced and removed with their objects, and `promtool
// check metrics` on the exposition.
#include "exporters/state_metrics/cluster_state_metrics.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <sstream>

#include "common/subprocess.h"

namespace kelpie::state_metrics {
namespace {

using nlohmann::json;

const json kPod = json::parse(R"({
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
               "creationTimestamp": "2026-01-02T03:04:05Z",
               "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                                    "uid": "rs-1", "controller": true}]},
  "spec": {"nodeName": "node-a", "priorityClassName": "high",
           "containers": [
             {"name": "app", "image": "busybox:1",
              "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                            "limits": {"cpu": "1", "memory": "128Mi", "example.com/dongle": "2"}}},
             {"name": "side", "image": "busybox:2"}]},
  "status": {"phase": "Running", "hostIP": "192.0.2.1", "podIP": "10.42.0.7",
             "conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
             "containerStatuses": [
               {"name": "app", "ready": true, "restartCount": 3, "image": "busybox:1",
                "imageID": "sha256:aa", "containerID": "runc://c1", "state": {"running": {}}},
               {"name": "side", "ready": false, "restartCount": 0, "image": "busybox:2",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
})");

// The text exposition of everything collected.
std::string Exposition(const ClusterStateMetrics& m) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, m.Collect());
  return out.str();
}

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(StateMetricsTest, PodSeries) {
  ClusterStateMetrics m;
  m.Upsert(ClusterStateMetrics::Kind::kPod, kPod);
  const std::string t = Exposition(m);
  EXPECT_TRUE(Has(t, R"(kube_pod_info{namespace="shop",pod="web-1",uid="u-1",host_ip="192.0.2.1",pod_ip="10.42.0.7",node="node-a",created_by_kind="ReplicaSet",created_by_name="web-abc",priority_class="high",host_network="false"} 1)"))
      << t;
  EXPECT_TRUE(Has(t, R"(kube_pod_created{namespace="shop",pod="web-1",uid="u-1"} 1767323045)")) << t;
  EXPECT_TRUE(Has(t, R"(kube_pod_owner{namespace="shop",pod="web-1",uid="u-1",owner_kind="ReplicaSet",owner_name="web-abc",owner_is_controller="true"} 1)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_status_phase{namespace="shop",pod="web-1",uid="u-1",phase="Running"} 1)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_status_phase{namespace="shop",pod="web-1",uid="u-1",phase="Pending"} 0)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_status_ready{namespace="shop",pod="web-1",uid="u-1",condition="false"} 1)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_status_ready{namespace="shop",pod="web-1",uid="u-1",condition="true"} 0)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_status_scheduled{namespace="shop",pod="web-1",uid="u-1",condition="true"} 1)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_container_resource_requests{namespace="shop",pod="web-1",uid="u-1",container="app",node="node-a",resource="cpu",unit="core"} 0.25)"))
      << t;
  EXPECT_TRUE(Has(t, R"(kube_pod_container_resource_requests{namespace="shop",pod="web-1",uid="u-1",container="app",node="node-a",resource="memory",unit="byte"} 67108864)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_container_resource_limits{namespace="shop",pod="web-1",uid="u-1",container="app",node="node-a",resource="example_com_dongle",unit="integer"} 2)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_container_status_restarts_total{namespace="shop",pod="web-1",uid="u-1",container="app"} 3)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_container_status_ready{namespace="shop",pod="web-1",uid="u-1",container="side"} 0)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_container_status_running{namespace="shop",pod="web-1",uid="u-1",container="app"} 1)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_container_status_waiting_reason{namespace="shop",pod="web-1",uid="u-1",container="side",reason="CrashLoopBackOff"} 1)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_container_info{namespace="shop",pod="web-1",uid="u-1",container="app",image_spec="busybox:1",image="busybox:1",image_id="sha256:aa",container_id="runc://c1"} 1)"));
  EXPECT_TRUE(Has(t, "# TYPE kube_pod_container_status_restarts_total counter"));
  // Nothing terminated: that reason family has no series and is left out.
  EXPECT_EQ(t.find("kube_pod_container_status_terminated_reason"), std::string::npos);
}

TEST(StateMetricsTest, PodWithoutOwnerOrPhase) {
  ClusterStateMetrics m;
  m.Upsert(ClusterStateMetrics::Kind::kPod,
           json::parse(R"({"metadata": {"name": "p", "namespace": "default", "uid": "u"}, "spec": {}})"));
  const std::string t = Exposition(m);
  EXPECT_TRUE(Has(t, R"(kube_pod_owner{namespace="default",pod="p",uid="u",owner_kind="<none>",owner_name="<none>",owner_is_controller="<none>"} 1)"));
  EXPECT_EQ(t.find("kube_pod_status_phase"), std::string::npos);
}

TEST(StateMetricsTest, DeploymentAndNodeSeries) {
  ClusterStateMetrics m;
  m.Upsert(ClusterStateMetrics::Kind::kDeployment, json::parse(R"({
    "metadata": {"name": "web", "namespace": "shop", "generation": 4},
    "spec": {"paused": true},
    "status": {"observedGeneration": 3, "replicas": 3, "readyReplicas": 2, "availableReplicas": 2,
               "unavailableReplicas": 1, "updatedReplicas": 1,
               "conditions": [{"type": "Available", "status": "True"}]}})"));
  m.Upsert(ClusterStateMetrics::Kind::kNode, json::parse(R"({
    "metadata": {"name": "node-a"},
    "spec": {"podCIDR": "10.42.1.0/24", "unschedulable": true,
             "taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
    "status": {"nodeInfo": {"kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12",
                            "containerRuntimeVersion": "runc://1.1.5", "kubeletVersion": "v1.32.0-kelpie",
                            "systemUUID": "id-1"},
               "addresses": [{"type": "Hostname", "address": "node-a"}, {"type": "InternalIP", "address": "192.0.2.1"}],
               "conditions": [{"type": "Ready", "status": "Unknown"}],
               "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
               "allocatable": {"cpu": "1900m", "ephemeral-storage": "10Gi", "hugepages-2Mi": "0"}}})"));
  const std::string t = Exposition(m);
  // spec.replicas absent: Kubernetes' default of 1.
  EXPECT_TRUE(Has(t, R"(kube_deployment_spec_replicas{namespace="shop",deployment="web"} 1)")) << t;
  EXPECT_TRUE(Has(t, R"(kube_deployment_spec_paused{namespace="shop",deployment="web"} 1)"));
  EXPECT_TRUE(Has(t, R"(kube_deployment_metadata_generation{namespace="shop",deployment="web"} 4)"));
  EXPECT_TRUE(Has(t, R"(kube_deployment_status_observed_generation{namespace="shop",deployment="web"} 3)"));
  EXPECT_TRUE(Has(t, R"(kube_deployment_status_replicas_unavailable{namespace="shop",deployment="web"} 1)"));
  EXPECT_TRUE(Has(t, R"(kube_deployment_status_replicas_ready{namespace="shop",deployment="web"} 2)"));
  EXPECT_TRUE(Has(t, R"(kube_deployment_status_condition{namespace="shop",deployment="web",condition="Available",status="true"} 1)"));
  EXPECT_TRUE(Has(t, R"(kube_node_info{node="node-a",kernel_version="6.1.0",os_image="Debian GNU/Linux 12",container_runtime_version="runc://1.1.5",kubelet_version="v1.32.0-kelpie",kubeproxy_version="",provider_id="",pod_cidr="10.42.1.0/24",system_uuid="id-1",internal_ip="192.0.2.1"} 1)"))
      << t;
  EXPECT_TRUE(Has(t, R"(kube_node_spec_unschedulable{node="node-a"} 1)"));
  EXPECT_TRUE(Has(t, R"(kube_node_spec_taint{node="node-a",key="dedicated",value="db",effect="NoSchedule"} 1)"));
  EXPECT_TRUE(Has(t, R"(kube_node_status_condition{node="node-a",condition="Ready",status="unknown"} 1)"));
  EXPECT_TRUE(Has(t, R"(kube_node_status_condition{node="node-a",condition="Ready",status="true"} 0)"));
  EXPECT_TRUE(Has(t, R"(kube_node_status_capacity{node="node-a",resource="memory",unit="byte"} 25769803776)"));
  EXPECT_TRUE(Has(t, R"(kube_node_status_capacity{node="node-a",resource="pods",unit="integer"} 110)"));
  EXPECT_TRUE(Has(t, R"(kube_node_status_allocatable{node="node-a",resource="cpu",unit="core"} 1.9)"));
  EXPECT_TRUE(Has(t, R"(kube_node_status_allocatable{node="node-a",resource="ephemeral_storage",unit="byte"} 10737418240)"));
  EXPECT_TRUE(Has(t, R"(kube_node_status_allocatable{node="node-a",resource="hugepages_2Mi",unit="byte"} 0)"));
}

TEST(StateMetricsTest, UpdatesReplaceAndDeletesRemoveAnObjectsSeries) {
  ClusterStateMetrics m;
  m.Upsert(ClusterStateMetrics::Kind::kPod, kPod);
  json later = kPod;
  later["status"]["phase"] = "Succeeded";
  later["status"]["containerStatuses"][0]["state"] = {{"terminated", {{"reason", "Completed"}, {"exitCode", 0}}}};
  m.Upsert(ClusterStateMetrics::Kind::kPod, later);
  std::string t = Exposition(m);
  EXPECT_TRUE(Has(t, R"(kube_pod_status_phase{namespace="shop",pod="web-1",uid="u-1",phase="Running"} 0)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_status_phase{namespace="shop",pod="web-1",uid="u-1",phase="Succeeded"} 1)"));
  EXPECT_TRUE(Has(t, R"(kube_pod_container_status_terminated_reason{namespace="shop",pod="web-1",uid="u-1",container="app",reason="Completed"} 1)"));
  // One object, one set of series: the update replaced the first.
  size_t infos = 0;
  for (size_t at = t.find("kube_pod_info{"); at != std::string::npos; at = t.find("kube_pod_info{", at + 1)) ++infos;
  EXPECT_EQ(infos, 1u);
  m.Remove(ClusterStateMetrics::Kind::kPod, later);
  EXPECT_EQ(Exposition(m), "");
}

TEST(StateMetricsTest, ResourceUnitsAndBadQuantities) {
  auto cpu = ToResourceValue("cpu", "1500m");
  ASSERT_TRUE(cpu.has_value());
  EXPECT_EQ(cpu->unit, "core");
  EXPECT_DOUBLE_EQ(cpu->value, 1.5);
  auto gpu = ToResourceValue("nvidia.com/gpu", "1");
  ASSERT_TRUE(gpu.has_value());
  EXPECT_EQ(gpu->resource, "nvidia_com_gpu");
  EXPECT_EQ(gpu->unit, "integer");
  // A quantity the API would refuse gives no series rather than a wrong one.
  EXPECT_FALSE(ToResourceValue("memory", "lots").has_value());
}

TEST(StateMetricsTest, PromtoolAcceptsTheExposition) {
  ClusterStateMetrics m;
  m.Upsert(ClusterStateMetrics::Kind::kPod, kPod);
  m.Upsert(ClusterStateMetrics::Kind::kNode,
           json::parse(R"({"metadata": {"name": "n", "creationTimestamp": "2026-01-02T03:04:05Z"},
                           "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                      "allocatable": {"cpu": "2"}}})"));
  m.Upsert(ClusterStateMetrics::Kind::kDeployment,
           json::parse(R"({"metadata": {"name": "d", "namespace": "default"}, "spec": {"replicas": 2}})"));
  auto promtool = FindExecutable("promtool");
  ASSERT_TRUE(promtool.has_value()) << "promtool (Debian package prometheus) is a test dependency";
  SubprocessOptions options;
  options.stdin_text = Exposition(m);
  auto r = RunSubprocess({*promtool, "check", "metrics"}, options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->Succeeded()) << r->stdout_text << r->stderr_text;
  EXPECT_EQ(r->stdout_text + r->stderr_text, "");
}

}  // namespace
}  // namespace kelpie::state_metrics
