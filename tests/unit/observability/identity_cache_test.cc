#include "control/identity/identity_cache.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace kelpie::identity {
namespace {

nlohmann::json Pod(const std::string& name, const std::string& ip) {
  return nlohmann::json::parse(R"({
    "metadata": {"name": ")" + name + R"(", "namespace": "shop", "uid": "uid-)" + name + R"(",
      "labels": {"app": "web", "pod-template-hash": "5d8f7"},
      "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8f7", "controller": true}]},
    "spec": {"nodeName": "node-a"},
    "status": {"podIP": ")" + ip + R"(", "podIPs": [{"ip": ")" + ip + R"("}]}})");
}

TEST(IdentityCacheTest, PodByIpCarriesNamespaceLabelsWorkloadAndNode) {
  IdentityCache cache;
  auto pod = PodRecordFromJson(Pod("web-1", "10.42.0.5"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->workload_kind, "Deployment");
  EXPECT_EQ(pod->workload_name, "web");
  cache.UpsertPod(*pod);
  Endpoint e = cache.ByIp(*ParseIpv4("10.42.0.5"));
  EXPECT_EQ(e.kind, EndpointKind::kPod);
  EXPECT_EQ(e.namespace_name, "shop");
  EXPECT_EQ(e.pod_name, "web-1");
  EXPECT_EQ(e.labels.at("app"), "web");
  EXPECT_EQ(e.node_name, "node-a");
  EXPECT_EQ(cache.ByIp(*ParseIpv4("10.42.0.6")).kind, EndpointKind::kWorld);
  EXPECT_EQ(cache.ByIp(*ParseIpv4("127.0.0.1")).kind, EndpointKind::kHost);
}

TEST(IdentityCacheTest, IpMovesWithThePodAndGoesOnDelete) {
  IdentityCache cache;
  cache.UpsertPod(*PodRecordFromJson(Pod("web-1", "10.42.0.5")));
  cache.UpsertPod(*PodRecordFromJson(Pod("web-1", "10.42.0.9")));  // new address
  EXPECT_EQ(cache.ByIp(*ParseIpv4("10.42.0.5")).kind, EndpointKind::kWorld);
  EXPECT_EQ(cache.ByIp(*ParseIpv4("10.42.0.9")).pod_name, "web-1");
  // The address is reused by another pod before the first is deleted.
  cache.UpsertPod(*PodRecordFromJson(Pod("web-2", "10.42.0.9")));
  cache.DeletePod("shop", "web-1");
  EXPECT_EQ(cache.ByIp(*ParseIpv4("10.42.0.9")).pod_name, "web-2");
  EXPECT_EQ(cache.pod_count(), 1u);
}

TEST(IdentityCacheTest, CgroupBindsToPodUid) {
  IdentityCache cache;
  cache.UpsertPod(*PodRecordFromJson(Pod("web-1", "10.42.0.5")));
  EXPECT_FALSE(cache.ByCgroup(77).has_value());
  cache.SetPodCgroup("uid-web-1", 77);
  ASSERT_TRUE(cache.ByCgroup(77).has_value());
  EXPECT_EQ(cache.ByCgroup(77)->pod_name, "web-1");
  cache.SetPodCgroup("uid-web-1", 78);  // a container's folder below the pod's
  EXPECT_EQ(cache.ByCgroup(78)->pod_name, "web-1");
  EXPECT_TRUE(cache.HasCgroup(78));
  cache.DeletePod("shop", "web-1");
  EXPECT_FALSE(cache.ByCgroup(77).has_value());
  EXPECT_FALSE(cache.HasCgroup(78));
}

TEST(IdentityCacheTest, ServicesByClusterIpAndBySelector) {
  IdentityCache cache;
  auto svc = ServiceRecordFromJson(nlohmann::json::parse(
      R"({"metadata": {"name": "web", "namespace": "shop"},
          "spec": {"clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"], "selector": {"app": "web"}}})"));
  ASSERT_TRUE(svc.ok()) << svc.status();
  cache.UpsertService(*svc);
  Endpoint e = cache.ByIp(*ParseIpv4("10.43.0.10"));
  EXPECT_EQ(e.kind, EndpointKind::kService);
  EXPECT_EQ(e.service_name, "web");
  EXPECT_EQ(cache.ServiceByIp(*ParseIpv4("10.43.0.10")).value_or(""), "shop/web");
  cache.UpsertPod(*PodRecordFromJson(Pod("web-1", "10.42.0.5")));
  EXPECT_EQ(cache.ServiceSelecting(cache.ByIp(*ParseIpv4("10.42.0.5"))).value_or(""), "shop/web");
  cache.DeleteService("shop", "web");
  EXPECT_EQ(cache.ByIp(*ParseIpv4("10.43.0.10")).kind, EndpointKind::kWorld);
  EXPECT_FALSE(cache.ServiceSelecting(cache.ByIp(*ParseIpv4("10.42.0.5"))).has_value());
}

TEST(IdentityCacheTest, HostNetworkPodsAndNodeAddressesAreHost) {
  IdentityCache cache;
  auto j = Pod("agent", "192.168.1.4");
  j["spec"]["hostNetwork"] = true;
  cache.UpsertPod(*PodRecordFromJson(j));
  cache.SetHostAddresses({"192.168.1.4"}, "node-a");
  Endpoint e = cache.ByIp(*ParseIpv4("192.168.1.4"));
  EXPECT_EQ(e.kind, EndpointKind::kHost);
  EXPECT_EQ(e.node_name, "node-a");
}

TEST(IdentityCacheTest, BadObjectsAreRejectedWithAReason) {
  EXPECT_FALSE(PodRecordFromJson(nlohmann::json::parse("[]")).ok());
  EXPECT_FALSE(PodRecordFromJson(nlohmann::json::parse(R"({"metadata": {}})")).ok());
  EXPECT_FALSE(ServiceRecordFromJson(nlohmann::json::parse(R"({"spec": {}})")).ok());
}

}  // namespace
}  // namespace kelpie::identity
