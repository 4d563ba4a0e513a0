// The cluster zone computed from Services and EndpointSlices, as CoreDNS's
// kubernetes plugin answers it.
#include "control/dns/cluster_dns_view.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace kelpie::dns {
namespace {

using service_proxy::DecodeEndpointSlice;
using service_proxy::DecodeService;

std::vector<std::string> Addresses(const std::vector<ResourceRecord>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) {
    if (auto a = AddressFromRdata(r)) out.push_back(*a);
  }
  std::sort(out.begin(), out.end());
  return out;
}

class ClusterDnsViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    view_.OnServiceUpdate(*DecodeService(R"({"metadata":{"namespace":"shop","name":"web"},
      "spec":{"clusterIP":"10.43.0.20","ports":[{"name":"http","port":80},{"name":"dns","port":53,"protocol":"UDP"}]}})"));
    view_.OnServiceUpdate(*DecodeService(R"({"metadata":{"namespace":"shop","name":"db"},
      "spec":{"clusterIP":"None","ports":[{"name":"pg","port":5432}]}})"));
    view_.OnEndpointSliceUpdate(*DecodeEndpointSlice(R"({"metadata":{"namespace":"shop","name":"db-abc",
      "labels":{"kubernetes.io/service-name":"db"}},"addressType":"IPv4",
      "endpoints":[{"addresses":["10.42.0.5"],"hostname":"db-0","conditions":{"ready":true}},
                   {"addresses":["10.42.0.6"],"conditions":{"ready":true}},
                   {"addresses":["10.42.0.7"],"conditions":{"ready":false}}],
      "ports":[{"name":"pg","port":5432,"protocol":"TCP"}]})"));
    view_.OnServiceUpdate(*DecodeService(R"({"metadata":{"namespace":"shop","name":"ext"},
      "spec":{"type":"ExternalName","externalName":"db.example.org"}})"));
  }
  ZoneAnswer Ask(const std::string& name, uint16_t type) {
    auto a = view_.Resolve({name, type, kClassIn});
    EXPECT_TRUE(a.has_value()) << name;
    return a.value_or(ZoneAnswer{Rcode::kRefused});
  }
  ClusterDnsView view_{ClusterDnsView::Options{}};
};

TEST_F(ClusterDnsViewTest, ClusterIpService) {
  auto a = Ask("Web.Shop.svc.cluster.local", rr::kA);
  EXPECT_EQ(a.rcode, Rcode::kNoError);
  EXPECT_EQ(Addresses(a.answers), std::vector<std::string>{"10.43.0.20"});
  EXPECT_EQ(a.answers[0].ttl, 5u);
  auto aaaa = Ask("web.shop.svc.cluster.local", rr::kAaaa);  // IPv4-only: NODATA with SOA
  EXPECT_EQ(aaaa.rcode, Rcode::kNoError);
  EXPECT_TRUE(aaaa.answers.empty());
  ASSERT_EQ(aaaa.authorities.size(), 1u);
  EXPECT_EQ(aaaa.authorities[0].type, rr::kSoa);
}

TEST_F(ClusterDnsViewTest, HeadlessServiceAnswersReadyEndpoints) {
  auto a = Ask("db.shop.svc.cluster.local", rr::kA);
  EXPECT_EQ(Addresses(a.answers), (std::vector<std::string>{"10.42.0.5", "10.42.0.6"}));
  auto host = Ask("db-0.db.shop.svc.cluster.local", rr::kA);
  EXPECT_EQ(Addresses(host.answers), std::vector<std::string>{"10.42.0.5"});
  auto dashed = Ask("10-42-0-6.db.shop.svc.cluster.local", rr::kA);
  EXPECT_EQ(Addresses(dashed.answers), std::vector<std::string>{"10.42.0.6"});
  EXPECT_EQ(Ask("10-42-0-7.db.shop.svc.cluster.local", rr::kA).rcode, Rcode::kNxDomain);  // not ready
}

TEST_F(ClusterDnsViewTest, SrvForNamedPorts) {
  auto a = Ask("_http._tcp.web.shop.svc.cluster.local", rr::kSrv);
  ASSERT_EQ(a.answers.size(), 1u);
  auto srv = SrvFromRdata(a.answers[0]);
  ASSERT_TRUE(srv);
  EXPECT_EQ(srv->port, 80);
  EXPECT_EQ(srv->target, "web.shop.svc.cluster.local");
  EXPECT_EQ(Addresses(a.additionals), std::vector<std::string>{"10.43.0.20"});
  EXPECT_EQ(Ask("_dns._udp.web.shop.svc.cluster.local", rr::kSrv).answers.size(), 1u);
  EXPECT_EQ(Ask("_dns._tcp.web.shop.svc.cluster.local", rr::kSrv).rcode, Rcode::kNxDomain);
  EXPECT_EQ(Ask("_nope._tcp.web.shop.svc.cluster.local", rr::kSrv).rcode, Rcode::kNxDomain);
  auto nodata = Ask("_http._tcp.web.shop.svc.cluster.local", rr::kA);
  EXPECT_EQ(nodata.rcode, Rcode::kNoError);
  EXPECT_TRUE(nodata.answers.empty());

  auto headless = Ask("_pg._tcp.db.shop.svc.cluster.local", rr::kSrv);
  std::vector<std::string> targets;
  for (const auto& r : headless.answers) targets.push_back(SrvFromRdata(r)->target);
  std::sort(targets.begin(), targets.end());
  EXPECT_EQ(targets, (std::vector<std::string>{"10-42-0-6.db.shop.svc.cluster.local", "db-0.db.shop.svc.cluster.local"}));
  EXPECT_EQ(Addresses(headless.additionals), (std::vector<std::string>{"10.42.0.5", "10.42.0.6"}));
}

TEST_F(ClusterDnsViewTest, PodNames) {
  EXPECT_EQ(Addresses(Ask("10-42-1-9.shop.pod.cluster.local", rr::kA).answers), std::vector<std::string>{"10.42.1.9"});
  EXPECT_EQ(Addresses(Ask("fd00-42--9.shop.pod.cluster.local", rr::kAaaa).answers), std::vector<std::string>{"fd00:42::9"});
  EXPECT_EQ(Ask("10-42-1-999.shop.pod.cluster.local", rr::kA).rcode, Rcode::kNxDomain);
  EXPECT_TRUE(Ask("10-42-1-9.shop.pod.cluster.local", rr::kAaaa).answers.empty());
}

TEST_F(ClusterDnsViewTest, PtrForClusterIpsAndEndpoints) {
  auto svc = Ask("20.0.43.10.in-addr.arpa", rr::kPtr);
  ASSERT_EQ(svc.answers.size(), 1u);
  EXPECT_EQ(NameFromRdata(svc.answers[0]), "web.shop.svc.cluster.local");
  auto ep = Ask("5.0.42.10.in-addr.arpa", rr::kPtr);
  ASSERT_EQ(ep.answers.size(), 1u);
  EXPECT_EQ(NameFromRdata(ep.answers[0]), "db-0.db.shop.svc.cluster.local");
  EXPECT_FALSE(view_.Resolve({"1.2.0.192.in-addr.arpa", rr::kPtr, kClassIn}).has_value());  // forwarded
}

TEST_F(ClusterDnsViewTest, NegativeAnswersAndForwarding) {
  EXPECT_EQ(Ask("nope.shop.svc.cluster.local", rr::kA).rcode, Rcode::kNxDomain);
  EXPECT_EQ(Ask("shop.svc.cluster.local", rr::kA).rcode, Rcode::kNoError);  // namespace exists
  EXPECT_EQ(Ask("other.svc.cluster.local", rr::kA).rcode, Rcode::kNxDomain);
  EXPECT_EQ(Ask("x.web.shop.svc.cluster.local", rr::kA).rcode, Rcode::kNxDomain);  // not headless
  EXPECT_EQ(Ask("whatever.cluster.local", rr::kA).rcode, Rcode::kNxDomain);
  auto soa = Ask("cluster.local", rr::kSoa);
  ASSERT_EQ(soa.answers.size(), 1u);
  EXPECT_EQ(soa.answers[0].type, rr::kSoa);
  EXPECT_FALSE(view_.Resolve({"example.com", rr::kA, kClassIn}).has_value());
  EXPECT_FALSE(view_.Resolve({"notcluster.local", rr::kA, kClassIn}).has_value());
}

TEST_F(ClusterDnsViewTest, ExternalNameIsCname) {
  auto a = Ask("ext.shop.svc.cluster.local", rr::kA);
  ASSERT_EQ(a.answers.size(), 1u);
  EXPECT_EQ(a.answers[0].type, rr::kCname);
  EXPECT_EQ(NameFromRdata(a.answers[0]), "db.example.org");
}

TEST_F(ClusterDnsViewTest, DeletesTakeEffect) {
  auto slice = *DecodeEndpointSlice(R"({"metadata":{"namespace":"shop","name":"db-abc",
      "labels":{"kubernetes.io/service-name":"db"}},"endpoints":[]})");
  view_.OnEndpointSliceDelete(slice);
  auto a = Ask("db.shop.svc.cluster.local", rr::kA);
  EXPECT_EQ(a.rcode, Rcode::kNoError);
  EXPECT_TRUE(a.answers.empty());
  EXPECT_FALSE(view_.Resolve({"5.0.42.10.in-addr.arpa", rr::kPtr, kClassIn}).has_value());
  view_.OnServiceDelete(*DecodeService(R"({"metadata":{"namespace":"shop","name":"web"},"spec":{}})"));
  EXPECT_EQ(Ask("web.shop.svc.cluster.local", rr::kA).rcode, Rcode::kNxDomain);
  EXPECT_FALSE(view_.Resolve({"20.0.43.10.in-addr.arpa", rr::kPtr, kClassIn}).has_value());
}

TEST(ReverseNameTest, Parses) {
  EXPECT_EQ(AddressFromReverseName("4.3.2.1.in-addr.arpa"), "1.2.3.4");
  EXPECT_FALSE(AddressFromReverseName("3.2.1.in-addr.arpa"));
  EXPECT_FALSE(AddressFromReverseName("256.3.2.1.in-addr.arpa"));
  std::string v6;
  for (char c : std::string("1000000000000000000000000000000000000000000000000000000000000000").substr(0, 32)) {
    v6 += std::string(1, c) + ".";
  }
  EXPECT_EQ(AddressFromReverseName(v6 + "ip6.arpa"), "::1");
}

}  // namespace
}  // namespace kelpie::dns
