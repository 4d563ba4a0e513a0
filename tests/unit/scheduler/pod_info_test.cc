#include "orchestrator/scheduler/pod_info.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/unit/scheduler/test_objects.h"

namespace kelpie::scheduler {
namespace {

using nlohmann::json;
using testing::Pod;
using testing::PodFrom;

TEST(PodInfoTest, EffectiveRequestsFollowInitContainersSidecarsAndOverhead) {
  json pod = json::parse(R"({
    "metadata": {"name": "p", "namespace": "ns"},
    "spec": {
      "initContainers": [
        {"name": "init", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}},
        {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}}
      ],
      "containers": [
        {"name": "a", "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "256Mi"}}},
        {"name": "b", "resources": {"requests": {"cpu": "250m", "example.com/gpu": "1"}}}
      ],
      "overhead": {"cpu": "10m"}
    }})");
  PodInfo p = PodFrom(pod);
  // Running: 500m + 250m + sidecar 100m = 850m; the init container (2 cpu) is larger.
  EXPECT_EQ(p.requests.milli_cpu, 2000 + 10);
  // Memory: the limit stands in for the unset request (256Mi) against init's 1Gi.
  EXPECT_EQ(p.requests.memory, 1024 * 1024 * 1024);
  EXPECT_EQ(p.requests.scalar.at("example.com/gpu"), 1);
  // Scoring counts a container without a memory request as 200Mi.
  EXPECT_EQ(p.non_zero_requests.milli_cpu, 2010);
  EXPECT_EQ(p.Key(), "ns/p");
}

TEST(PodInfoTest, BadQuantityNamesTheField) {
  json pod = testing::PodJson("p", "lots");
  auto p = DecodePod(pod);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("spec.containers[0].resources.cpu"), std::string::npos) << p.status();
}

TEST(PodInfoTest, SelectorsMatchAsKubernetes) {
  json pod = json::parse(R"({
    "metadata": {"name": "p"},
    "spec": {"containers": [{"name": "c"}],
      "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]},
                              {"key": "gen", "operator": "Gt", "values": ["3"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]}
      ]}}}}})");
  PodInfo p = PodFrom(pod);
  ASSERT_TRUE(p.required_node_affinity);
  EXPECT_TRUE(p.required_node_affinity->Matches("n1", {{"zone", "a"}, {"gen", "4"}}));
  EXPECT_FALSE(p.required_node_affinity->Matches("n1", {{"zone", "a"}, {"gen", "3"}}));
  EXPECT_FALSE(p.required_node_affinity->Matches("n1", {{"zone", "c"}, {"gen", "9"}}));
  EXPECT_TRUE(p.required_node_affinity->Matches("special", {}));

  LabelSelector everything;
  EXPECT_TRUE(everything.Matches({}));
  LabelSelector nothing;
  nothing.matches_nothing = true;
  EXPECT_FALSE(nothing.Matches({{"a", "b"}}));
  LabelSelector not_in{{{"app", SelectorRequirement::Op::kNotIn, {"web"}}}};
  EXPECT_TRUE(not_in.Matches({}));
  EXPECT_FALSE(not_in.Matches({{"app", "web"}}));
}

TEST(PodInfoTest, UnknownOperatorIsAnError) {
  json pod = json::parse(R"({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
      {"matchExpressions": [{"key": "zone", "operator": "Near", "values": ["a"]}]}]}}}}})");
  EXPECT_FALSE(DecodePod(pod).ok());
}

TEST(PodInfoTest, NodeDecoding) {
  json node = json::parse(R"({"metadata": {"name": "n", "labels": {"zone": "a"}},
    "spec": {"unschedulable": true, "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
    "status": {"allocatable": {"cpu": "3500m", "memory": "7Gi", "pods": "110", "ephemeral-storage": "10Gi"},
               "images": [{"names": ["docker.io/library/busybox:latest", "busybox@sha256:abc"], "sizeBytes": 1000000}]}})");
  NodeInfo n = testing::NodeFrom(node);
  EXPECT_EQ(n.allocatable.milli_cpu, 3500);
  EXPECT_EQ(n.allocatable.pods, 110);
  EXPECT_TRUE(n.unschedulable);
  ASSERT_EQ(n.taints.size(), 1u);
  EXPECT_EQ(n.image_sizes.at("docker.io/library/busybox:latest"), 1000000);
  EXPECT_EQ(NormalizedImageName("busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(NormalizedImageName("registry:5000/app"), "registry:5000/app:latest");
  EXPECT_EQ(NormalizedImageName("quay.io/x/y:1.0"), "quay.io/x/y:1.0");
}

}  // namespace
}  // namespace kelpie::scheduler
