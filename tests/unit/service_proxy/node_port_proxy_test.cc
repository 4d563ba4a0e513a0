// NodePortProxy: Services and EndpointSlices to NodePort frontends and
// backend lists, checked against an in-memory NodePortMaps.
#include "control/service_proxy/node_port_proxy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <map>
#include <tuple>

namespace kelpie::service_proxy {
namespace {

uint32_t Ip(const char* s) {
  in_addr a = {};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

class FakeNodePortMaps : public dataplane::NodePortMaps {
 public:
  using Key = std::tuple<uint32_t, uint16_t, uint8_t>;
  absl::Status UpsertFrontend(const kelpie_np_frontend_key& k, const kelpie_np_frontend_value& v) override {
    // The program reads backends [0, count): they must exist already.
    for (uint32_t i = 0; i < v.backend_count; ++i) {
      EXPECT_TRUE(backends.count({v.service_id, i})) << "frontend written before its backend " << i;
    }
    frontends[{k.address, k.port, k.protocol}] = v;
    return absl::OkStatus();
  }
  absl::Status DeleteFrontend(const kelpie_np_frontend_key& k) override {
    frontends.erase({k.address, k.port, k.protocol});
    return absl::OkStatus();
  }
  absl::Status UpsertBackend(uint32_t id, uint32_t index, const kelpie_np_backend& b) override {
    backends[{id, index}] = b;
    return absl::OkStatus();
  }
  absl::Status DeleteBackend(uint32_t id, uint32_t index) override {
    for (const auto& [k, v] : frontends) EXPECT_FALSE(v.service_id == id && index < v.backend_count);
    backends.erase({id, index});
    return absl::OkStatus();
  }
  std::map<Key, kelpie_np_frontend_value> frontends;
  std::map<std::pair<uint32_t, uint32_t>, kelpie_np_backend> backends;
};

Service NodePortService(bool local) {
  Service s;
  s.namespace_name = "default";
  s.name = "web";
  s.type = "NodePort";
  s.cluster_ips = {"10.43.0.20"};
  s.ports = {{.name = "http", .protocol = Protocol::kTcp, .port = 80, .node_port = 30080},
             {.name = "dns", .protocol = Protocol::kUdp, .port = 53, .node_port = 30053}};
  s.external_ips = {"192.0.2.10"};
  s.external_traffic_local = local;
  return s;
}

EndpointSlice Slice() {
  EndpointSlice e;
  e.namespace_name = "default";
  e.name = "web-1";
  e.service_name = "web";
  Endpoint a;
  a.addresses = {"10.42.0.5"};
  a.node_name = "node-a";
  Endpoint b;
  b.addresses = {"10.42.1.5"};
  b.node_name = "node-b";
  Endpoint gone;
  gone.addresses = {"10.42.0.9"};
  gone.node_name = "node-a";
  gone.conditions.ready = false;
  gone.conditions.serving = false;
  e.endpoints = {a, b, gone};
  e.ports = {{.name = "http", .protocol = Protocol::kTcp, .port = 8080},
             {.name = "dns", .protocol = Protocol::kUdp, .port = 5353}};
  return e;
}

NodePortProxyOptions Options() { return {.node_name = "node-a", .node_addresses = {"172.16.0.1", "172.16.1.1"}}; }

TEST(NodePortProxyTest, ClusterPolicyProgramsEveryNodeAddressAndExternalIp) {
  FakeNodePortMaps maps;
  NodePortProxy proxy(maps, Options());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice()).ok());
  ASSERT_TRUE(proxy.OnServiceUpdate(NodePortService(false)).ok());
  // 2 node addresses x 2 ports + 1 externalIP x 2 ports.
  ASSERT_EQ(maps.frontends.size(), 6u);
  auto fe = maps.frontends.at({Ip("172.16.1.1"), htons(30080), IPPROTO_TCP});
  EXPECT_EQ(fe.backend_count, 2u) << "ready endpoints of every node, not the unready one";
  EXPECT_EQ(fe.snat_address, Ip("172.16.1.1"));
  EXPECT_EQ(fe.flags, 0);
  auto ext = maps.frontends.at({Ip("192.0.2.10"), htons(80), IPPROTO_TCP});
  EXPECT_EQ(ext.service_id, fe.service_id);
  EXPECT_EQ(ext.snat_address, Ip("172.16.0.1"));
  auto udp = maps.frontends.at({Ip("172.16.0.1"), htons(30053), IPPROTO_UDP});
  EXPECT_NE(udp.service_id, fe.service_id);
  EXPECT_EQ(maps.backends.at({udp.service_id, 0}).port, htons(5353));
}

TEST(NodePortProxyTest, LocalPolicyUsesOnlyThisNodesBackendsWithoutSnat) {
  FakeNodePortMaps maps;
  NodePortProxy proxy(maps, Options());
  ASSERT_TRUE(proxy.OnServiceUpdate(NodePortService(true)).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice()).ok());
  auto fe = maps.frontends.at({Ip("172.16.0.1"), htons(30080), IPPROTO_TCP});
  EXPECT_EQ(fe.flags, KELPIE_NP_FRONTEND_LOCAL);
  ASSERT_EQ(fe.backend_count, 1u);
  EXPECT_EQ(maps.backends.at({fe.service_id, 0}).address, Ip("10.42.0.5"));
}

TEST(NodePortProxyTest, EndpointAndServiceRemovalShrinkAndClean) {
  FakeNodePortMaps maps;
  NodePortProxy proxy(maps, Options());
  ASSERT_TRUE(proxy.OnServiceUpdate(NodePortService(false)).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice()).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceDelete("default", "web-1").ok());
  auto fe = maps.frontends.at({Ip("172.16.0.1"), htons(30080), IPPROTO_TCP});
  EXPECT_EQ(fe.backend_count, 0u) << "no endpoints: the program drops and counts";
  EXPECT_TRUE(maps.backends.empty());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice()).ok());
  Service cluster_ip = NodePortService(false);
  cluster_ip.type = "ClusterIP";
  cluster_ip.external_ips.clear();
  ASSERT_TRUE(proxy.OnServiceUpdate(cluster_ip).ok());
  EXPECT_TRUE(maps.frontends.empty()) << "a ClusterIP service has no NodePort frontends";
  ASSERT_TRUE(proxy.OnServiceDelete("default", "web").ok());
  EXPECT_TRUE(maps.backends.empty());
  EXPECT_EQ(proxy.frontend_count(), 0u);
}

}  // namespace
}  // namespace kelpie::service_proxy
