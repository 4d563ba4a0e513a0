// Service ClusterIP and NodePort allocation through a real `kelpie server`,
// including across a restart.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <set>

#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class ServiceAllocationTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    auto s = testing::KelpieServer::Start(dir_.File("data"), port_, dir_.File("server.log"),
                                          {"--service-cidr", "10.43.0.0/24", "--service-node-port-range", "30000-30009"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }

  http::HttpResponse CreateService(const json& spec, const std::string& name) {
    json svc = {{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", {{"name", name}}}, {"spec", spec}};
    auto client = server_->AdminClient();
    EXPECT_TRUE(client.ok());
    auto r = (*client)->Do({"POST", "/api/v1/namespaces/default/services", {{"Content-Type", "application/json"}}, svc.dump()});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(http::HttpResponse{});
  }

  http::HttpResponse Do(const std::string& method, const std::string& target) {
    auto client = server_->AdminClient();
    auto r = (*client)->Do({method, target, {}, ""});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(http::HttpResponse{});
  }

  testing::TempDir dir_;
  int port_ = testing::FreeTcpPort();
  std::unique_ptr<testing::KelpieServer> server_;
};

json Ports() { return json::array({{{"port", 80}}}); }

TEST_F(ServiceAllocationTest, KubernetesServiceHasFirstAddress) {
  auto r = Do("GET", "/api/v1/namespaces/default/services/kubernetes");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["spec"]["clusterIP"], "10.43.0.1");
  r = Do("GET", "/api/v1/namespaces/default/endpoints/kubernetes");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["subsets"][0]["addresses"][0]["ip"], "127.0.0.1");
}

TEST_F(ServiceAllocationTest, AddressesAreUniqueAndDefaulted) {
  std::set<std::string> ips;
  for (int i = 0; i < 20; ++i) {
    auto r = CreateService({{"ports", Ports()}}, "svc-" + std::to_string(i));
    ASSERT_EQ(r.status, 201) << r.body;
    json svc = json::parse(r.body);
    EXPECT_EQ(svc["spec"]["type"], "ClusterIP");
    EXPECT_EQ(svc["spec"]["sessionAffinity"], "None");
    EXPECT_EQ(svc["spec"]["ports"][0]["protocol"], "TCP");
    EXPECT_EQ(svc["spec"]["ports"][0]["targetPort"], 80);
    std::string ip = svc["spec"]["clusterIP"];
    EXPECT_EQ(ip.rfind("10.43.0.", 0), 0u) << ip;
    EXPECT_NE(ip, "10.43.0.1");
    EXPECT_TRUE(ips.insert(ip).second) << "allocated twice: " << ip;
  }
  auto headless = CreateService({{"clusterIP", "None"}, {"ports", Ports()}}, "headless");
  ASSERT_EQ(headless.status, 201) << headless.body;
  EXPECT_EQ(json::parse(headless.body)["spec"]["clusterIP"], "None");
}

TEST_F(ServiceAllocationTest, RequestedAddressConflictsAndRelease) {
  auto a = CreateService({{"clusterIP", "10.43.0.50"}, {"ports", Ports()}}, "a");
  ASSERT_EQ(a.status, 201) << a.body;
  auto b = CreateService({{"clusterIP", "10.43.0.50"}, {"ports", Ports()}}, "b");
  EXPECT_EQ(b.status, 422) << b.body;
  EXPECT_NE(b.body.find("provided IP is already allocated"), std::string::npos) << b.body;
  auto out = CreateService({{"clusterIP", "10.44.0.1"}, {"ports", Ports()}}, "c");
  EXPECT_EQ(out.status, 422);
  EXPECT_NE(out.body.find("not in the valid range"), std::string::npos) << out.body;
  ASSERT_EQ(Do("DELETE", "/api/v1/namespaces/default/services/a").status, 200);
  auto again = CreateService({{"clusterIP", "10.43.0.50"}, {"ports", Ports()}}, "b");
  EXPECT_EQ(again.status, 201) << again.body;
}

TEST_F(ServiceAllocationTest, NodePortsAllocatedOnceAndExhaustionIsClear) {
  json two_ports = json::array({{{"name", "a"}, {"port", 80}}, {{"name", "b"}, {"port", 81}}});
  std::set<int64_t> seen;
  for (int i = 0; i < 5; ++i) {
    auto r = CreateService({{"type", "NodePort"}, {"ports", two_ports}}, "np-" + std::to_string(i));
    ASSERT_EQ(r.status, 201) << r.body;
    for (const auto& p : json::parse(r.body)["spec"]["ports"]) {
      int64_t np = p["nodePort"];
      EXPECT_GE(np, 30000);
      EXPECT_LE(np, 30009);
      EXPECT_TRUE(seen.insert(np).second) << "node port allocated twice: " << np;
    }
  }
  // The range of ten ports is used up.
  auto full = CreateService({{"type", "NodePort"}, {"ports", Ports()}}, "np-full");
  EXPECT_EQ(full.status, 422) << full.body;
  EXPECT_NE(full.body.find("range is full"), std::string::npos) << full.body;
  auto bad = CreateService({{"type", "NodePort"}, {"ports", json::array({{{"port", 80}, {"nodePort", 40000}}})}}, "np-bad");
  EXPECT_EQ(bad.status, 422);
  EXPECT_NE(bad.body.find("not in the valid range"), std::string::npos) << bad.body;
}

TEST_F(ServiceAllocationTest, AllocationsSurviveRestart) {
  auto a = CreateService({{"clusterIP", "10.43.0.77"}, {"type", "NodePort"},
                          {"ports", json::array({{{"port", 80}, {"nodePort", 30005}}})}},
                         "kept");
  ASSERT_EQ(a.status, 201) << a.body;
  server_->process().Signal(SIGTERM);
  ASSERT_TRUE(server_->process().Wait(30s).has_value());
  server_.reset();
  Start();
  auto ip_taken = CreateService({{"clusterIP", "10.43.0.77"}, {"ports", Ports()}}, "other");
  EXPECT_EQ(ip_taken.status, 422) << ip_taken.body;
  auto port_taken = CreateService({{"type", "NodePort"}, {"ports", json::array({{{"port", 80}, {"nodePort", 30005}}})}},
                                  "other2");
  EXPECT_EQ(port_taken.status, 422) << port_taken.body;
  EXPECT_NE(port_taken.body.find("provided port is already allocated"), std::string::npos) << port_taken.body;
}

}  // namespace
}  // namespace kelpie
