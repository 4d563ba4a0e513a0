// NodePortProxy: Services and EndpointSlices to NodePort frontends and
// backend lists, checked against an in-memory NodePortMaps.
#include "control/service_proxy/node_port_proxy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <prometheus/registry.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "control/service_proxy/node_addresses.h"
#include "control/service_proxy/node_port_metrics.h"

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
    ++writes;
    return absl::OkStatus();
  }
  absl::Status DeleteFrontend(const kelpie_np_frontend_key& k) override {
    frontends.erase({k.address, k.port, k.protocol});
    ++writes;
    return absl::OkStatus();
  }
  absl::Status UpsertBackend(uint32_t id, uint32_t index, const kelpie_np_backend& b) override {
    backends[{id, index}] = b;
    ++writes;
    return absl::OkStatus();
  }
  absl::Status DeleteBackend(uint32_t id, uint32_t index) override {
    for (const auto& [k, v] : frontends) EXPECT_FALSE(v.service_id == id && index < v.backend_count);
    backends.erase({id, index});
    ++writes;
    return absl::OkStatus();
  }
  absl::StatusOr<dataplane::NodePortSnapshot> Snapshot() const override {
    dataplane::NodePortSnapshot s;
    for (const auto& [k, v] : frontends) {
      s.frontends.push_back({{.address = std::get<0>(k), .port = std::get<1>(k), .protocol = std::get<2>(k), .pad = 0}, v});
    }
    for (const auto& [k, v] : backends) s.backends.push_back({{.service_id = k.first, .index = k.second}, v});
    return s;
  }
  std::map<Key, kelpie_np_frontend_value> frontends;
  std::map<std::pair<uint32_t, uint32_t>, kelpie_np_backend> backends;
  int writes = 0;  // upserts and deletes
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

TEST(NodePortProxyTest, RestoreKeepsServingAndRemovesStaleEntriesOnlyAfterTheInitialSync) {
  FakeNodePortMaps maps;
  {
    // The previous run: "web" and a service deleted while no agent ran.
    NodePortProxy first(maps, Options());
    ASSERT_TRUE(first.OnServiceUpdate(NodePortService(false)).ok());
    ASSERT_TRUE(first.OnEndpointSliceUpdate(Slice()).ok());
    Service gone = NodePortService(false);
    gone.name = "gone";
    gone.external_ips.clear();
    gone.ports = {{.name = "http", .protocol = Protocol::kTcp, .port = 80, .node_port = 31000}};
    ASSERT_TRUE(first.OnServiceUpdate(gone).ok());
  }
  auto before = maps.frontends;
  auto before_backends = maps.backends;
  ASSERT_EQ(before.size(), 8u);

  NodePortProxy second(maps, Options());
  ASSERT_TRUE(second.Restore().ok());
  EXPECT_EQ(second.frontend_count(), 8u);
  maps.writes = 0;
  // Before the initial sync: a Service without its slice yet must not
  // shrink what is serving.
  ASSERT_TRUE(second.OnServiceUpdate(NodePortService(false)).ok());
  EXPECT_EQ(maps.writes, 0);
  ASSERT_TRUE(second.OnEndpointSliceUpdate(Slice()).ok());
  EXPECT_EQ(maps.writes, 0);
  ASSERT_TRUE(second.OnInitialSyncDone().ok());
  // "web" adopted its ids: identical entries, only the stale service went.
  EXPECT_EQ(maps.frontends.size(), 6u);
  for (const auto& [key, value] : maps.frontends) {
    ASSERT_TRUE(before.count(key));
    EXPECT_EQ(value.service_id, before.at(key).service_id);
    EXPECT_EQ(value.backend_count, before.at(key).backend_count);
  }
  EXPECT_FALSE(maps.frontends.count({Ip("172.16.0.1"), htons(31000), IPPROTO_TCP}));
  for (const auto& [key, backend] : maps.backends) EXPECT_TRUE(before_backends.count(key));
  EXPECT_EQ(maps.writes, 2 /* two frontends */ + 0 /* the stale service had no backends */);
  // After the sync, events apply at once again.
  ASSERT_TRUE(second.OnEndpointSliceDelete("default", "web-1").ok());
  EXPECT_EQ(maps.frontends.at({Ip("172.16.0.1"), htons(30080), IPPROTO_TCP}).backend_count, 0u);
  EXPECT_TRUE(maps.backends.empty());
}

TEST(NodePortProxyTest, NewIdsNeverCollideWithRestoredOnes) {
  FakeNodePortMaps maps;
  {
    NodePortProxy first(maps, Options());
    ASSERT_TRUE(first.OnServiceUpdate(NodePortService(false)).ok());
    ASSERT_TRUE(first.OnEndpointSliceUpdate(Slice()).ok());
  }
  std::set<uint32_t> old_ids;
  for (const auto& [key, value] : maps.frontends) old_ids.insert(value.service_id);
  NodePortProxy second(maps, Options());
  ASSERT_TRUE(second.Restore().ok());
  Service other = NodePortService(false);
  other.name = "other";
  other.external_ips.clear();
  other.ports = {{.name = "http", .protocol = Protocol::kTcp, .port = 80, .node_port = 31001}};
  ASSERT_TRUE(second.OnServiceUpdate(other).ok());
  ASSERT_TRUE(second.OnInitialSyncDone().ok());
  auto fe = maps.frontends.at({Ip("172.16.0.1"), htons(31001), IPPROTO_TCP});
  EXPECT_EQ(old_ids.count(fe.service_id), 0u);
  EXPECT_EQ(maps.frontends.size(), 2u) << "web was not announced again: its frontends went";
  EXPECT_TRUE(maps.backends.empty());
}

TEST(NodePortProxyTest, NodeAddressChangesMoveTheFrontends) {
  FakeNodePortMaps maps;
  NodePortProxy proxy(maps, Options());
  ASSERT_TRUE(proxy.OnServiceUpdate(NodePortService(false)).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice()).ok());
  ASSERT_TRUE(proxy.SetNodeAddresses({"172.16.2.1"}).ok());
  EXPECT_TRUE(maps.frontends.count({Ip("172.16.2.1"), htons(30080), IPPROTO_TCP}));
  EXPECT_FALSE(maps.frontends.count({Ip("172.16.0.1"), htons(30080), IPPROTO_TCP}));
  EXPECT_EQ(maps.frontends.at({Ip("192.0.2.10"), htons(80), IPPROTO_TCP}).snat_address, Ip("172.16.2.1"));
  EXPECT_EQ(maps.frontends.size(), 4u);
  maps.writes = 0;
  ASSERT_TRUE(proxy.SetNodeAddresses({"172.16.2.1", "172.16.2.1"}).ok());
  EXPECT_EQ(maps.writes, 0) << "unchanged addresses write nothing";
  ASSERT_TRUE(proxy.SetNodeAddresses({}).ok());
  EXPECT_TRUE(maps.frontends.empty()) << "no node address: nothing to listen on";
  EXPECT_TRUE(maps.backends.empty());
}

TEST(NodePortProxyTest, LoadBalancerServicesGetNodePortsAndExternalIps) {
  FakeNodePortMaps maps;
  NodePortProxy proxy(maps, Options());
  Service lb = NodePortService(true);
  lb.type = "LoadBalancer";
  ASSERT_TRUE(proxy.OnServiceUpdate(lb).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice()).ok());
  ASSERT_EQ(maps.frontends.size(), 6u);
  auto ext = maps.frontends.at({Ip("192.0.2.10"), htons(80), IPPROTO_TCP});
  EXPECT_EQ(ext.flags, KELPIE_NP_FRONTEND_LOCAL) << "externalTrafficPolicy applies to externalIPs too";
  EXPECT_EQ(ext.backend_count, 1u);
}

TEST(NodeAddressesTest, DefaultRouteInterfaceIsTheLowestMetricDefaultRoute) {
  const std::string table =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
      "eth1\t00000000\t0101A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n"
      "eth0\t00000000\t010011AC\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
      "eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
  auto iface = DefaultRouteInterface(table);
  ASSERT_TRUE(iface.ok());
  EXPECT_EQ(*iface, "eth0");
  EXPECT_EQ(DefaultRouteInterface("Iface\tDestination\n").status().code(), absl::StatusCode::kNotFound);
}

TEST(NodeAddressesTest, LoopbackAddressesAreRead) {
  auto addresses = InterfaceIpv4Addresses({"lo"});
  ASSERT_TRUE(addresses.ok());
  EXPECT_NE(std::find(addresses->begin(), addresses->end(), "127.0.0.1"), addresses->end());
  auto none = InterfaceIpv4Addresses({"no-such-interface"});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(NodePortMetricsTest, ReasonCountersFollowTheKernelTotals) {
  prometheus::Registry registry;
  NodePortMetrics metrics(registry, {.frontends = 10, .backends = 10, .conntrack = 100});
  std::vector<uint64_t> totals(KELPIE_NP_REASON_MAX, 0);
  totals[KELPIE_NP_NEW_CONNECTION] = 5;
  metrics.UpdateReasons(totals);
  totals[KELPIE_NP_NEW_CONNECTION] = 7;
  metrics.UpdateReasons(totals);
  metrics.UpdateState(2, 3, 50, 1, 2);
  double packets = -1, pressure = -1;
  for (const auto& family : registry.Collect()) {
    for (const auto& m : family.metric) {
      bool is_new = !m.label.empty() && m.label[0].value == "new_connection";
      if (family.name == "kelpie_nodeport_packets_total" && is_new) packets = m.counter.value;
      if (family.name == "kelpie_nodeport_map_pressure" && m.label[0].value == "np_conntrack") {
        pressure = m.gauge.value;
      }
    }
  }
  EXPECT_EQ(packets, 7);
  EXPECT_DOUBLE_EQ(pressure, 0.5);
  EXPECT_STREQ(NodePortReasonName(KELPIE_NP_DROP_NO_BACKEND), "drop_no_backend");
}

}  // namespace
}  // namespace kelpie::service_proxy
