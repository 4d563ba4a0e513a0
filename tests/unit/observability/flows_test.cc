// Flow decoding with identity, filters, the observer ring, JSON and table
// output, and the pipeline's per-service counters.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/text_serializer.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "exporters/flows/flow_decoder.h"
#include "exporters/flows/flow_filter.h"
#include "exporters/flows/flow_format.h"
#include "exporters/flows/flow_observer.h"
#include "exporters/flows/flow_pipeline.h"

namespace kelpie::flows {
namespace {

using identity::IdentityCache;
using identity::ParseIpv4;
using identity::PodRecord;

constexpr uint64_t kClientCgroup = 1001;

class FlowsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    identities_.UpsertPod(PodRecord{.uid = "u1", .namespace_name = "shop", .name = "client-1",
                                    .labels = {{"app", "client"}}, .node_name = "node-a", .ips = {"10.42.0.5"}});
    identities_.UpsertPod(PodRecord{.uid = "u2", .namespace_name = "shop", .name = "web-1",
                                    .labels = {{"app", "web"}}, .node_name = "node-a", .ips = {"10.42.0.7"}});
    identities_.UpsertService({.namespace_name = "shop", .name = "web", .cluster_ips = {"10.43.0.10"},
                               .selector = {{"app", "web"}}});
    identities_.SetPodCgroup("u1", kClientCgroup);
  }

  kelpie_flow_event Event(uint32_t type, const char* remote, uint16_t remote_port, uint32_t origin) {
    kelpie_flow_event e;
    std::memset(&e, 0, sizeof(e));
    e.key.cgroup_id = kClientCgroup;
    e.key.local_ip = *ParseIpv4("10.42.0.5");
    e.key.remote_ip = *ParseIpv4(remote);
    e.key.local_port = 40000;
    e.key.remote_port = remote_port;
    e.key.protocol = IPPROTO_TCP;
    e.stats.first_seen_ns = 1000;
    e.stats.last_seen_ns = 2000;
    e.stats.tx_bytes = 1500;
    e.stats.rx_bytes = 800;
    e.stats.tx_packets = 5;
    e.stats.rx_packets = 4;
    e.stats.tcp_flags_tx = 0x02 | 0x10 | 0x01;
    e.stats.tcp_flags_rx = 0x12;
    e.stats.origin = origin;
    e.timestamp_ns = 3000;
    e.type = type;
    e.verdict = KELPIE_VERDICT_FORWARDED;
    return e;
  }

  FlowDecoder Decoder() {
    return FlowDecoder(identities_, {.node_name = "node-a",
                                     .drop_reason_name = [](uint32_t r) { return r == 5 ? "NETFILTER_DROP" : "X"; },
                                     .monotonic_to_wall_ns = 1'700'000'000'000'000'000});
  }

  IdentityCache identities_;
};

TEST_F(FlowsTest, DecoderNamesBothPodsAndTheServiceTheBackendServes) {
  Flow f = Decoder().Decode(Event(KELPIE_FLOW_CLOSE, "10.42.0.7", 8080, KELPIE_ORIGIN_LOCAL));
  EXPECT_EQ(f.type, FlowEventType::kClose);
  EXPECT_EQ(f.source.endpoint.pod_name, "client-1");
  EXPECT_EQ(f.destination.endpoint.pod_name, "web-1");
  EXPECT_EQ(f.destination.port, 8080);
  EXPECT_EQ(f.destination_service, "shop/web");
  EXPECT_EQ(f.bytes_sent, 1500u);
  EXPECT_EQ(f.bytes_received, 800u);
  EXPECT_TRUE(f.egress);
  EXPECT_EQ(f.time_ns, 1'700'000'000'000'003'000);
  EXPECT_EQ(f.tcp_flags, (std::vector<std::string>{"FIN", "SYN", "ACK"}));
  EXPECT_EQ(f.node_name, "node-a");
}

TEST_F(FlowsTest, DecoderOrientsInboundConnectionsAndMarksWorld) {
  Flow f = Decoder().Decode(Event(KELPIE_FLOW_OPEN, "203.0.113.9", 51000, KELPIE_ORIGIN_REMOTE));
  EXPECT_EQ(f.source.endpoint.kind, identity::EndpointKind::kWorld);
  EXPECT_EQ(f.source.ip, "203.0.113.9");
  EXPECT_EQ(f.destination.endpoint.pod_name, "client-1");
  EXPECT_EQ(f.bytes_sent, 800u);  // what the world sent
  EXPECT_FALSE(f.egress);
  EXPECT_TRUE(f.destination_service.empty());
}

TEST_F(FlowsTest, DecoderNamesDropReasonAndServiceAddress) {
  kelpie_flow_event e = Event(KELPIE_FLOW_DROP, "10.43.0.10", 80, KELPIE_ORIGIN_LOCAL);
  e.verdict = KELPIE_VERDICT_DROPPED;
  e.stats.drops = 1;
  e.stats.last_drop_reason = 5;
  Flow f = Decoder().Decode(e);
  EXPECT_EQ(f.verdict, Verdict::kDropped);
  EXPECT_EQ(f.drop_reason, "NETFILTER_DROP");
  EXPECT_EQ(f.destination.endpoint.kind, identity::EndpointKind::kService);
  EXPECT_EQ(f.destination_service, "shop/web");
}

TEST_F(FlowsTest, FiltersAndWithinOrAcrossAndDeny) {
  Flow to_web = Decoder().Decode(Event(KELPIE_FLOW_CLOSE, "10.42.0.7", 8080, KELPIE_ORIGIN_LOCAL));
  kelpie_flow_event d = Event(KELPIE_FLOW_DROP, "203.0.113.9", 443, KELPIE_ORIGIN_LOCAL);
  d.verdict = KELPIE_VERDICT_DROPPED;
  Flow dropped = Decoder().Decode(d);

  FlowFilter pod{.pods = {"shop/web-1"}};
  EXPECT_TRUE(pod.Matches(to_web));
  EXPECT_FALSE(pod.Matches(dropped));
  FlowFilter prefix{.pods = {"web-*"}};
  EXPECT_TRUE(prefix.Matches(to_web));
  FlowFilter from_web{.source_pods = {"web-1"}};
  EXPECT_FALSE(from_web.Matches(to_web));
  FlowFilter dropped_in_shop{.namespaces = {"shop"}, .verdicts = {Verdict::kDropped}};
  EXPECT_FALSE(dropped_in_shop.Matches(to_web));
  EXPECT_TRUE(dropped_in_shop.Matches(dropped));
  FlowFilter label{.labels = {{"app", "web"}}};
  EXPECT_TRUE(label.Matches(to_web));
  FlowFilter service{.services = {"web"}};
  EXPECT_TRUE(service.Matches(to_web));
  EXPECT_FALSE(service.Matches(dropped));
  FlowFilter port{.ports = {443}};
  EXPECT_TRUE(port.Matches(dropped));
  FlowFilter udp{.protocols = {"udp"}};
  EXPECT_FALSE(udp.Matches(to_web));

  EXPECT_TRUE(PassesFilters(to_web, {pod, port}, {}));
  EXPECT_TRUE(PassesFilters(dropped, {pod, port}, {}));
  EXPECT_FALSE(PassesFilters(dropped, {}, {port}));
  EXPECT_TRUE(PassesFilters(dropped, {}, {}));

  EXPECT_FALSE(ParseVerdict("LOST").ok());
  EXPECT_EQ(*ParseVerdict("dropped"), Verdict::kDropped);
  EXPECT_FALSE(ParseLabelSelector("app").ok());
  EXPECT_EQ(ParseLabelSelector("app=web,tier=front")->size(), 2u);
}

TEST_F(FlowsTest, ObserverKeepsTheNewestAndAnswersLastNSinceAndFollow) {
  FlowObserver observer(3);
  std::vector<Flow> followed;
  uint64_t id = observer.Subscribe({.allow = {FlowFilter{.ports = {2}}}}, [&](const Flow& f) { followed.push_back(f); });
  for (int i = 0; i < 5; ++i) {
    Flow f;
    f.time_ns = 100 + i;
    f.destination.port = static_cast<uint16_t>(i);
    observer.Add(f);
  }
  EXPECT_EQ(observer.size(), 3u);
  EXPECT_EQ(observer.flows_seen(), 5u);
  auto all = observer.GetFlows({});
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all.front().destination.port, 2);  // oldest first
  auto last = observer.GetFlows({.last = 2});
  ASSERT_EQ(last.size(), 2u);
  EXPECT_EQ(last[0].destination.port, 3);
  EXPECT_EQ(observer.GetFlows({.since_ns = 104}).size(), 1u);
  EXPECT_EQ(observer.GetFlows({.until_ns = 102}).size(), 1u);
  ASSERT_EQ(followed.size(), 1u);
  EXPECT_EQ(followed[0].destination.port, 2);
  observer.Unsubscribe(id);
  observer.Add(Flow{.destination = {.port = 2}});
  EXPECT_EQ(followed.size(), 1u);
}

TEST_F(FlowsTest, JsonRoundTripsAndTableNamesPods) {
  Flow f = Decoder().Decode(Event(KELPIE_FLOW_CLOSE, "10.42.0.7", 8080, KELPIE_ORIGIN_LOCAL));
  nlohmann::json j = FlowToJson(f);
  EXPECT_EQ(j["verdict"], "FORWARDED");
  EXPECT_EQ(j["source"]["pod_name"], "client-1");
  EXPECT_EQ(j["destination"]["namespace"], "shop");
  EXPECT_EQ(j["destination_service"]["name"], "web");
  EXPECT_EQ(j["l4"]["TCP"]["destination_port"], 8080);
  EXPECT_EQ(j["l4"]["TCP"]["flags"]["SYN"], true);
  auto back = FlowFromJson(nlohmann::json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->time_ns, f.time_ns);
  EXPECT_EQ(back->destination.endpoint.pod_name, "web-1");
  EXPECT_EQ(back->destination.endpoint.labels, f.destination.endpoint.labels);
  EXPECT_EQ(back->bytes_sent, 1500u);
  EXPECT_EQ(back->tcp_flags.size(), 3u);
  EXPECT_EQ(back->destination_service, "shop/web");
  std::string row = FlowToTableRow(f);
  EXPECT_NE(row.find("shop/client-1 (10.42.0.5:40000)"), std::string::npos) << row;
  EXPECT_NE(row.find("shop/web-1 (10.42.0.7:8080)"), std::string::npos) << row;
  EXPECT_NE(row.find("FORWARDED"), std::string::npos);
  EXPECT_FALSE(FlowFromJson(nlohmann::json::parse(R"({"time": "yesterday"})")).ok());
}

TEST_F(FlowsTest, PipelineStoresFlowsAndCountsPerServiceWithACap) {
  FlowObserver observer(100);
  prometheus::Registry registry;
  FlowPipeline pipeline(Decoder(), observer, registry, {.max_service_series = 1});
  kelpie_flow_event e = Event(KELPIE_FLOW_CLOSE, "10.42.0.7", 8080, KELPIE_ORIGIN_LOCAL);
  pipeline.Handle(std::string_view(reinterpret_cast<const char*>(&e), sizeof(e)));
  pipeline.Handle(std::string_view(reinterpret_cast<const char*>(&e), sizeof(e)));
  pipeline.Handle("short");
  identities_.UpsertService({.namespace_name = "shop", .name = "web2", .cluster_ips = {"10.43.0.11"}});
  kelpie_flow_event other = Event(KELPIE_FLOW_CLOSE, "10.43.0.11", 80, KELPIE_ORIGIN_LOCAL);
  pipeline.Handle(std::string_view(reinterpret_cast<const char*>(&other), sizeof(other)));
  EXPECT_EQ(observer.size(), 3u);
  EXPECT_EQ(pipeline.events_handled(), 3u);
  std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  EXPECT_NE(text.find("kelpie_service_connections_total{namespace=\"shop\",service=\"web\"} 2"), std::string::npos)
      << text;
  EXPECT_NE(text.find("kelpie_service_bytes_total{direction=\"sent\",namespace=\"shop\",service=\"web\"} 3000"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("kelpie_service_connections_total{namespace=\"other\",service=\"other\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("kelpie_flow_events_total{type=\"close\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("kelpie_flow_events_invalid_total 1"), std::string::npos) << text;
}

}  // namespace
}  // namespace kelpie::flows
