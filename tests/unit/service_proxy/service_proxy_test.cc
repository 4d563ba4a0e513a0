// ServiceProxy against in-memory maps: Kubernetes semantics (named ports,
// ready/serving/terminating, headless, traffic policy, affinity), minimal
// and ordered writes, restore after restart and stale removal only after
// the initial sync, metrics.
#include "control/service_proxy/service_proxy.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <algorithm>

#include "tests/unit/service_proxy/fake_lb_maps.h"

namespace kelpie::service_proxy {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;
using testing::FakeLbMaps;

kelpie_lb_service_key Key(const char* ip, uint16_t port, bool udp = false) {
  kelpie_lb_service_key k{};
  ::inet_pton(AF_INET, ip, &k.address);
  k.port = htons(port);
  k.protocol = udp ? IPPROTO_UDP : IPPROTO_TCP;
  return k;
}

Service Web() {
  Service s;
  s.namespace_name = "shop";
  s.name = "web";
  s.cluster_ips = {"10.43.0.20"};
  s.ports = {{.name = "http", .protocol = Protocol::kTcp, .port = 80},
             {.name = "dns", .protocol = Protocol::kUdp, .port = 53}};
  return s;
}

Endpoint Ep(const char* ip, bool ready = true, bool serving = true, bool terminating = false,
            const char* node = "node-a") {
  Endpoint e;
  e.addresses = {ip};
  e.conditions = {.ready = ready, .serving = serving, .terminating = terminating};
  e.node_name = node;
  return e;
}

EndpointSlice Slice(const char* name, std::vector<Endpoint> eps, uint16_t http_port = 8080) {
  EndpointSlice s;
  s.namespace_name = "shop";
  s.name = name;
  s.service_name = "web";
  s.endpoints = std::move(eps);
  s.ports = {{.name = "http", .protocol = Protocol::kTcp, .port = http_port},
             {.name = "dns", .protocol = Protocol::kUdp, .port = 5353}};
  return s;
}

class ServiceProxyTest : public ::testing::Test {
 protected:
  FakeLbMaps maps;
  prometheus::Registry registry;
  ServiceProxy proxy{maps, registry, {.node_name = "node-a"}};
  // A fresh start: the informer's initial list was empty.
  void SetUp() override { ASSERT_TRUE(proxy.OnInitialSyncDone().ok()); }
};

TEST_F(ServiceProxyTest, NamedPortsResolvePerSliceForTcpAndUdp) {
  ASSERT_TRUE(proxy.OnServiceUpdate(Web()).ok());
  // Two slices whose pods expose "http" on different container ports.
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.5"), Ep("10.42.0.6")}, 8080)).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice("web-2", {Ep("10.42.1.7")}, 9090)).ok());
  EXPECT_THAT(maps.RoutedTo(Key("10.43.0.20", 80)),
              UnorderedElementsAre("10.42.0.5:8080", "10.42.0.6:8080", "10.42.1.7:9090"));
  EXPECT_THAT(maps.RoutedTo(Key("10.43.0.20", 53, true)),
              UnorderedElementsAre("10.42.0.5:5353", "10.42.0.6:5353", "10.42.1.7:5353"));
  EXPECT_EQ(proxy.frontend_count(), 2u);
  EXPECT_EQ(maps.backends.size(), 6u);
}

TEST_F(ServiceProxyTest, TerminatingServingEndpointsOnlyWhenNothingIsReady) {
  ASSERT_TRUE(proxy.OnServiceUpdate(Web()).ok());
  ASSERT_TRUE(proxy
                  .OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.5"), Ep("10.42.0.6", false, true, true),
                                                         Ep("10.42.0.7", false, false, false)}))
                  .ok());
  EXPECT_THAT(maps.RoutedTo(Key("10.43.0.20", 80)), ElementsAre("10.42.0.5:8080"));
  ASSERT_TRUE(proxy
                  .OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.5", false, false, true),
                                                         Ep("10.42.0.6", false, true, true),
                                                         Ep("10.42.0.7", false, false, false)}))
                  .ok());
  EXPECT_THAT(maps.RoutedTo(Key("10.43.0.20", 80)), ElementsAre("10.42.0.6:8080"));
}

TEST_F(ServiceProxyTest, NoEndpointsKeepsAnEmptyServiceSoConnectsAreRefused) {
  ASSERT_TRUE(proxy.OnServiceUpdate(Web()).ok());
  ASSERT_EQ(maps.services.count(Key("10.43.0.20", 80)), 1u);
  EXPECT_EQ(maps.services[Key("10.43.0.20", 80)].slot_count, 0u);
}

TEST_F(ServiceProxyTest, NodePortsOfNodeAddressesAreServedToLocalClients) {
  Service s = Web();
  s.type = "NodePort";
  s.external_traffic_local = true;  // does not apply to node-local clients
  s.ports[0].node_port = 30080;
  s.ports[1].node_port = 30053;
  ASSERT_TRUE(proxy.OnServiceUpdate(s).ok());
  ASSERT_TRUE(proxy
                  .OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.5", true, true, false, "node-a"),
                                                         Ep("10.42.1.5", true, true, false, "node-b")}))
                  .ok());
  EXPECT_EQ(maps.services.count(Key("172.16.0.1", 30080)), 0u) << "no node address known yet";
  ASSERT_TRUE(proxy.SetNodeAddresses({"172.16.0.1"}).ok());
  EXPECT_THAT(maps.RoutedTo(Key("172.16.0.1", 30080)), UnorderedElementsAre("10.42.0.5:8080", "10.42.1.5:8080"));
  EXPECT_THAT(maps.RoutedTo(Key("172.16.0.1", 30053, true)),
              UnorderedElementsAre("10.42.0.5:5353", "10.42.1.5:5353"));
  EXPECT_TRUE(maps.services[Key("172.16.0.1", 30080)].flags & KELPIE_LB_SERVICE_EXTERNAL);
  // The address moves: the frontends follow.
  ASSERT_TRUE(proxy.SetNodeAddresses({"172.16.9.1"}).ok());
  EXPECT_EQ(maps.services.count(Key("172.16.0.1", 30080)), 0u);
  EXPECT_EQ(maps.services.count(Key("172.16.9.1", 30080)), 1u);
  // A ClusterIP service has none.
  s.type = "ClusterIP";
  ASSERT_TRUE(proxy.OnServiceUpdate(s).ok());
  EXPECT_EQ(maps.services.count(Key("172.16.9.1", 30080)), 0u);
  EXPECT_EQ(proxy.frontend_count(), 2u);
}

TEST_F(ServiceProxyTest, HeadlessAndExternalNameServicesAreNotRouted) {
  Service headless = Web();
  headless.cluster_ips = {"None"};
  ASSERT_TRUE(proxy.OnServiceUpdate(headless).ok());
  Service alias = Web();
  alias.name = "alias";
  alias.type = "ExternalName";
  ASSERT_TRUE(proxy.OnServiceUpdate(alias).ok());
  EXPECT_TRUE(maps.services.empty());
}

TEST_F(ServiceProxyTest, InternalTrafficPolicyLocalKeepsThisNodesEndpoints) {
  Service s = Web();
  s.internal_traffic_local = true;
  s.external_ips = {"192.0.2.10"};
  ASSERT_TRUE(proxy.OnServiceUpdate(s).ok());
  ASSERT_TRUE(proxy
                  .OnEndpointSliceUpdate(
                      Slice("web-1", {Ep("10.42.0.5", true, true, false, "node-a"),
                                      Ep("10.42.1.5", true, true, false, "node-b")}))
                  .ok());
  EXPECT_THAT(maps.RoutedTo(Key("10.43.0.20", 80)), ElementsAre("10.42.0.5:8080"));
  EXPECT_TRUE(maps.services[Key("10.43.0.20", 80)].flags & KELPIE_LB_SERVICE_LOCAL);
  // externalIPs follow the external policy (Cluster here).
  EXPECT_THAT(maps.RoutedTo(Key("192.0.2.10", 80)), UnorderedElementsAre("10.42.0.5:8080", "10.42.1.5:8080"));
  EXPECT_TRUE(maps.services[Key("192.0.2.10", 80)].flags & KELPIE_LB_SERVICE_EXTERNAL);
}

TEST_F(ServiceProxyTest, SessionAffinityIsFlaggedWithTimeout) {
  Service s = Web();
  s.session_affinity_client_ip = true;
  s.session_affinity_timeout_s = 60;
  ASSERT_TRUE(proxy.OnServiceUpdate(s).ok());
  const auto& v = maps.services[Key("10.43.0.20", 80)];
  EXPECT_TRUE(v.flags & KELPIE_LB_SERVICE_AFFINITY);
  EXPECT_EQ(v.affinity_timeout_s, 60u);
}

TEST_F(ServiceProxyTest, UnchangedInputWritesNothingAndIdsStayStable) {
  ASSERT_TRUE(proxy.OnServiceUpdate(Web()).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.5"), Ep("10.42.0.6")})).ok());
  uint32_t id = *proxy.ServiceIdOf(Key("10.43.0.20", 80));
  auto backends = maps.backends;
  maps.log.clear();
  ASSERT_TRUE(proxy.OnServiceUpdate(Web()).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.6"), Ep("10.42.0.5")})).ok());
  EXPECT_TRUE(maps.log.empty()) << ::testing::PrintToString(maps.log);
  EXPECT_EQ(*proxy.ServiceIdOf(Key("10.43.0.20", 80)), id);
  EXPECT_EQ(maps.backends, backends);
}

TEST_F(ServiceProxyTest, RemovingABackendRewritesSlotsBeforeCountAndDeletesBackendLast) {
  Service s = Web();
  s.ports.resize(1);
  ASSERT_TRUE(proxy.OnServiceUpdate(s).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.5"), Ep("10.42.0.6"), Ep("10.42.0.7")})).ok());
  uint32_t id = *proxy.ServiceIdOf(Key("10.43.0.20", 80));
  maps.log.clear();
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.5"), Ep("10.42.0.7")})).ok());
  EXPECT_THAT(maps.RoutedTo(Key("10.43.0.20", 80)), ElementsAre("10.42.0.5:8080", "10.42.0.7:8080"));
  std::string sid = std::to_string(id);
  EXPECT_THAT(maps.log, ElementsAre("slots " + sid + " n=2", "service+ 10.43.0.20:80/tcp id=" + sid + " n=2",
                                    "slots- " + sid + " [2,3)", ::testing::StartsWith("backend- ")));
  EXPECT_EQ(maps.backends.size(), 2u);
}

TEST_F(ServiceProxyTest, AddingABackendWritesItBeforeTheSlotsThatNameIt) {
  Service s = Web();
  s.ports.resize(1);
  ASSERT_TRUE(proxy.OnServiceUpdate(s).ok());
  maps.log.clear();
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.5")})).ok());
  ASSERT_EQ(maps.log.size(), 3u);
  EXPECT_THAT(maps.log[0], ::testing::StartsWith("backend+ "));
  EXPECT_THAT(maps.log[1], ::testing::StartsWith("slots "));
  EXPECT_THAT(maps.log[2], ::testing::StartsWith("service+ "));
}

TEST_F(ServiceProxyTest, DeletingAServiceRemovesEntryThenSlotsThenBackends) {
  Service s = Web();
  s.ports.resize(1);
  ASSERT_TRUE(proxy.OnServiceUpdate(s).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.5")})).ok());
  maps.log.clear();
  ASSERT_TRUE(proxy.OnServiceDelete("shop", "web").ok());
  ASSERT_EQ(maps.log.size(), 3u);
  EXPECT_THAT(maps.log[0], ::testing::StartsWith("service- "));
  EXPECT_THAT(maps.log[1], ::testing::StartsWith("slots- "));
  EXPECT_THAT(maps.log[2], ::testing::StartsWith("backend- "));
  EXPECT_TRUE(maps.services.empty());
  EXPECT_TRUE(maps.slots.empty());
  EXPECT_TRUE(maps.backends.empty());
}

TEST_F(ServiceProxyTest, SharedBackendLivesUntilItsLastService) {
  Service a = Web();
  a.ports.resize(1);
  Service b = a;
  b.name = "web2";
  b.cluster_ips = {"10.43.0.21"};
  EndpointSlice sb = Slice("web2-1", {Ep("10.42.0.5")});
  sb.service_name = "web2";
  ASSERT_TRUE(proxy.OnServiceUpdate(a).ok());
  ASSERT_TRUE(proxy.OnServiceUpdate(b).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.5")})).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(sb).ok());
  EXPECT_EQ(maps.backends.size(), 1u);
  ASSERT_TRUE(proxy.OnEndpointSliceDelete("shop", "web-1").ok());
  EXPECT_EQ(maps.backends.size(), 1u);
  EXPECT_THAT(maps.RoutedTo(Key("10.43.0.21", 80)), ElementsAre("10.42.0.5:8080"));
  EXPECT_TRUE(maps.RoutedTo(Key("10.43.0.20", 80)).empty());
}

TEST_F(ServiceProxyTest, MaglevTablesFillTheConfiguredSize) {
  prometheus::Registry maglev_registry;
  ServiceProxy maglev(maps, maglev_registry, {.node_name = "node-a", .maglev_table_size = 251});
  ASSERT_TRUE(maglev.OnInitialSyncDone().ok());
  Service s = Web();
  s.ports.resize(1);
  ASSERT_TRUE(maglev.OnServiceUpdate(s).ok());
  ASSERT_TRUE(maglev.OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.5"), Ep("10.42.0.6")})).ok());
  auto routed = maps.RoutedTo(Key("10.43.0.20", 80));
  ASSERT_EQ(routed.size(), 251u);
  EXPECT_TRUE(maps.services[Key("10.43.0.20", 80)].flags & KELPIE_LB_SERVICE_MAGLEV);
  long a = std::count(routed.begin(), routed.end(), "10.42.0.5:8080");
  EXPECT_GE(a, 124);
  EXPECT_LE(a, 127);
}

TEST(ServiceProxyRestoreTest, RestoredStateServesUntilInitialSyncThenStaleEntriesGo) {
  FakeLbMaps maps;
  prometheus::Registry registry;
  Service s = Web();
  s.ports.resize(1);
  Service old = s;
  old.name = "gone";
  old.cluster_ips = {"10.43.0.99"};
  EndpointSlice gone_slice = Slice("gone-1", {Ep("10.42.9.9")});
  gone_slice.service_name = "gone";
  uint32_t web_id = 0;
  {
    ServiceProxy first(maps, registry, {.node_name = "node-a"});
    ASSERT_TRUE(first.OnInitialSyncDone().ok());
    ASSERT_TRUE(first.OnServiceUpdate(s).ok());
    ASSERT_TRUE(first.OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.5"), Ep("10.42.0.6")})).ok());
    ASSERT_TRUE(first.OnServiceUpdate(old).ok());
    ASSERT_TRUE(first.OnEndpointSliceUpdate(gone_slice).ok());
    web_id = *first.ServiceIdOf(Key("10.43.0.20", 80));
  }
  // "Restart": a new proxy over the same maps; "gone" was deleted meanwhile.
  prometheus::Registry registry2;
  ServiceProxy second(maps, registry2, {.node_name = "node-a"});
  ASSERT_TRUE(second.Restore().ok());
  EXPECT_EQ(second.frontend_count(), 2u);
  maps.log.clear();
  // The Service arrives before its slice: nothing may shrink meanwhile.
  ASSERT_TRUE(second.OnServiceUpdate(s).ok());
  EXPECT_TRUE(maps.log.empty()) << ::testing::PrintToString(maps.log);
  ASSERT_TRUE(second.OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.6"), Ep("10.42.0.5")})).ok());
  // The stale service keeps routing until the informer's full list is in.
  EXPECT_THAT(maps.RoutedTo(Key("10.43.0.99", 80)), ElementsAre("10.42.9.9:8080"));
  EXPECT_THAT(maps.RoutedTo(Key("10.43.0.20", 80)), ElementsAre("10.42.0.5:8080", "10.42.0.6:8080"));
  ASSERT_TRUE(second.OnInitialSyncDone().ok());
  // Same content: adopted with its id; only the stale service and its
  // backend were touched.
  EXPECT_EQ(*second.ServiceIdOf(Key("10.43.0.20", 80)), web_id);
  for (const auto& line : maps.log) {
    EXPECT_EQ(line.find("10.43.0.20"), std::string::npos) << line;
    EXPECT_NE(line.rfind("slots ", 0), 0u) << line;
  }
  EXPECT_EQ(maps.services.count(Key("10.43.0.99", 80)), 0u);
  EXPECT_EQ(maps.backends.size(), 2u);
  EXPECT_THAT(maps.RoutedTo(Key("10.43.0.20", 80)), ElementsAre("10.42.0.5:8080", "10.42.0.6:8080"));
  EXPECT_EQ(second.frontend_count(), 1u);
}

TEST(ServiceProxyRestoreTest, OrphanSlotsAndBackendsAreRemovedAtInitialSync) {
  FakeLbMaps maps;
  maps.backends[7] = {.address = htonl(0x0a2a0001), .port = htons(80), .protocol = IPPROTO_TCP, .flags = 0};
  maps.slots[42][0] = 7;
  prometheus::Registry registry;
  ServiceProxy proxy(maps, registry, {.node_name = "node-a"});
  ASSERT_TRUE(proxy.Restore().ok());
  EXPECT_EQ(proxy.frontend_count(), 0u);
  ASSERT_TRUE(proxy.OnInitialSyncDone().ok());
  EXPECT_TRUE(maps.slots.empty());
  EXPECT_TRUE(maps.backends.empty());
}

TEST_F(ServiceProxyTest, ExportsTheIssueMetrics) {
  maps.lru = {.revnat = 25, .affinity = 10};
  ASSERT_TRUE(proxy.RefreshLruPressure().ok());
  ASSERT_TRUE(proxy.OnServiceUpdate(Web()).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(Slice("web-1", {Ep("10.42.0.5")})).ok());
  std::map<std::string, const prometheus::MetricFamily*> families;
  auto collected = registry.Collect();
  for (const auto& f : collected) families[f.name] = &f;
  ASSERT_TRUE(families.count("kelpie_service_sync_duration_seconds"));
  ASSERT_TRUE(families.count("kelpie_service_programming_latency_seconds"));
  ASSERT_TRUE(families.count("kelpie_service_map_pressure"));
  EXPECT_EQ(families["kelpie_service_sync_duration_seconds"]->metric[0].histogram.sample_count, 2u);
  EXPECT_EQ(families["kelpie_service_programming_latency_seconds"]->metric[0].histogram.sample_count, 1u);
  for (const auto& m : families["kelpie_service_map_pressure"]->metric) {
    if (m.label[0].value == "lb_services") {
      EXPECT_DOUBLE_EQ(m.gauge.value, 2.0 / 100);
    }
    if (m.label[0].value == "lb_backends") {
      EXPECT_DOUBLE_EQ(m.gauge.value, 2.0 / 100);
    }
    if (m.label[0].value == "lb_revnat") {
      EXPECT_DOUBLE_EQ(m.gauge.value, 25.0 / 100);
    }
    if (m.label[0].value == "lb_affinity") {
      EXPECT_DOUBLE_EQ(m.gauge.value, 10.0 / 100);
    }
  }
}

}  // namespace
}  // namespace kelpie::service_proxy
