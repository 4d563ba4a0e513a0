// Decoding Services and EndpointSlices: Kubernetes defaults for absent
// fields, and clear errors for bad input.
#include "control/service_proxy/service_types.h"

#include <gtest/gtest.h>

namespace kelpie::service_proxy {
namespace {

TEST(ServiceTypesTest, DecodesServiceWithDefaults) {
  auto s = DecodeService(R"({"metadata":{"namespace":"shop","name":"web"},
    "spec":{"clusterIP":"10.43.0.20","ports":[{"name":"http","port":80,"targetPort":"http"},
      {"name":"dns","port":53,"protocol":"UDP","nodePort":30053}],
      "sessionAffinity":"ClientIP","externalIPs":["192.0.2.10"],"internalTrafficPolicy":"Local"}})");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->Key(), "shop/web");
  EXPECT_EQ(s->type, "ClusterIP");
  EXPECT_EQ(s->cluster_ips, std::vector<std::string>{"10.43.0.20"});
  ASSERT_EQ(s->ports.size(), 2u);
  EXPECT_EQ(s->ports[0].protocol, Protocol::kTcp);
  EXPECT_EQ(s->ports[1].protocol, Protocol::kUdp);
  EXPECT_EQ(s->ports[1].node_port, 30053);
  EXPECT_TRUE(s->session_affinity_client_ip);
  EXPECT_EQ(s->session_affinity_timeout_s, 10800u);
  EXPECT_EQ(s->external_ips, std::vector<std::string>{"192.0.2.10"});
  EXPECT_TRUE(s->internal_traffic_local);
  EXPECT_FALSE(s->external_traffic_local);
  EXPECT_FALSE(s->Headless());
}

TEST(ServiceTypesTest, ClusterIPsWinAndHeadlessIsRecognised) {
  auto s = DecodeService(R"({"metadata":{"name":"a"},"spec":{"clusterIP":"None","clusterIPs":["None"]}})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->namespace_name, "default");
  EXPECT_TRUE(s->Headless());
}

TEST(ServiceTypesTest, BadServiceInputIsAnError) {
  EXPECT_FALSE(DecodeService("not json").ok());
  EXPECT_FALSE(DecodeService(R"({"metadata":{}})").ok());
  auto bad_port = DecodeService(R"({"metadata":{"name":"a"},"spec":{"ports":[{"port":70000}]}})");
  ASSERT_FALSE(bad_port.ok());
  EXPECT_NE(bad_port.status().message().find("spec.ports[0].port"), std::string::npos) << bad_port.status();
  auto bad_proto = DecodeService(R"({"metadata":{"name":"a"},"spec":{"ports":[{"port":1,"protocol":"ICMP"}]}})");
  EXPECT_FALSE(bad_proto.ok());
  auto bad_timeout = DecodeService(
      R"({"metadata":{"name":"a"},"spec":{"sessionAffinityConfig":{"clientIP":{"timeoutSeconds":0}}}})");
  EXPECT_FALSE(bad_timeout.ok());
}

TEST(ServiceTypesTest, DecodesEndpointSliceConditionsPerKubernetesDefaults) {
  auto s = DecodeEndpointSlice(R"({"metadata":{"namespace":"shop","name":"web-abc",
      "labels":{"kubernetes.io/service-name":"web"},
      "annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2024-01-02T03:04:05Z"}},
    "addressType":"IPv4",
    "endpoints":[{"addresses":["10.42.0.5"],"nodeName":"n1"},
                 {"addresses":["10.42.0.6"],"conditions":{"ready":false}},
                 {"addresses":["10.42.0.7"],"conditions":{"ready":false,"serving":true,"terminating":true}}],
    "ports":[{"name":"http","port":8080},{"name":"all"}]})");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ServiceKey(), "shop/web");
  ASSERT_EQ(s->endpoints.size(), 3u);
  EXPECT_TRUE(s->endpoints[0].conditions.ready);
  EXPECT_TRUE(s->endpoints[0].conditions.serving);
  EXPECT_FALSE(s->endpoints[0].conditions.terminating);
  EXPECT_EQ(s->endpoints[0].node_name, "n1");
  EXPECT_FALSE(s->endpoints[1].conditions.ready);
  EXPECT_FALSE(s->endpoints[1].conditions.serving);  // nil serving follows ready
  EXPECT_TRUE(s->endpoints[2].conditions.serving);
  EXPECT_TRUE(s->endpoints[2].conditions.terminating);
  ASSERT_EQ(s->ports.size(), 2u);
  EXPECT_EQ(s->ports[0].port, 8080);
  EXPECT_FALSE(s->ports[1].port.has_value());
  ASSERT_TRUE(s->last_change_trigger_ns.has_value());
  EXPECT_EQ(*s->last_change_trigger_ns, 1704164645LL * 1000000000LL);
}

}  // namespace
}  // namespace kelpie::service_proxy
