// Services created through the API reach their endpoints through the eBPF
// socket load balancer that `kelpie server` runs: the server's informers
// feed the proxy, which programs the maps of programs attached (here) to a
// test cgroup the test process moves into. Backends live in a test network
// namespace; the load balancer's pins go to a private bpffs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/subprocess.h"
#include "tests/integration/service_routing/service_routing_env.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using nlohmann::json;
using namespace service_routing_testing;
using namespace std::chrono_literals;

constexpr uint16_t kBackendPort = 18080;

class ApiServiceRoutingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KELPIE_REQUIRE_PRIVILEGES();
    std::string id = std::to_string(::getpid() % 100000);
    prefix_ = absl::StrCat("10.42.", 150 + ::getpid() % 40);
    auto route = RunSubprocess({"ip", "route", "show", "10.43.0.0/16"});
    route_existed_ = route.ok() && !route->stdout_text.empty();
    auto bpffs = PrivateBpffs::Mount();
    ASSERT_TRUE(bpffs.ok()) << bpffs.status();
    bpffs_ = std::move(*bpffs);
    auto net = BackendNetns::Create("kapi" + id, prefix_, 3);
    ASSERT_TRUE(net.ok()) << net.status();
    net_ = std::move(*net);
    auto servers = EchoServers::Start(net_->name(), net_->addresses(), kBackendPort, kBackendPort + 1);
    ASSERT_TRUE(servers.ok()) << servers.status();
    servers_ = std::move(*servers);
    auto cg = TestCgroup::Create("kelpie-api-routing-" + id);
    ASSERT_TRUE(cg.ok()) << cg.status();
    cgroup_ = std::move(*cg);
    auto s = testing::KelpieServer::Start(
        dir_.File("data"), testing::FreeTcpPort(), dir_.File("server.log"),
        {"--service-routing=true", "--service-routing-cgroup=" + cgroup_->path(), "--bpffs=" + bpffs_->path(),
         "--node-name=routing-node"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    // The API answers before the node's service routing is loaded.
    for (int i = 0; i < 300 && server_->Log().find("service routing: socket load balancer") == std::string::npos; ++i) {
      std::this_thread::sleep_for(100ms);
    }
    ASSERT_NE(server_->Log().find("service routing: socket load balancer"), std::string::npos) << server_->Log();
    ASSERT_TRUE(cgroup_->Enter().ok());
  }

  void TearDown() override {
    server_.reset();  // ends the server; its pins go with the private bpffs
    cgroup_.reset();
    servers_.reset();
    net_.reset();
    bpffs_.reset();
    if (!route_existed_) (void)RunSubprocess({"ip", "route", "del", "unreachable", "10.43.0.0/16"});
  }

  json Call(const std::string& method, const std::string& target, const json& body = nullptr) {
    auto client = server_->AdminClient();
    EXPECT_TRUE(client.ok());
    auto r = (*client)->Do({method, target, {{"Content-Type", "application/json"}}, body.is_null() ? "" : body.dump()});
    EXPECT_TRUE(r.ok()) << r.status();
    return json::parse(r.ok() ? r->body : "{}", nullptr, false);
  }

  // Replies (backend addresses) of `n` connections to ip:port, waiting up
  // to 15 s for the first one to succeed.
  std::multiset<std::string> Connect(const std::string& ip, uint16_t port, int n) {
    std::multiset<std::string> replies;
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (replies.empty() && std::chrono::steady_clock::now() < deadline) {
      ConnectResult r = TcpRequest(ip, port, 1000);
      if (r.error == 0) replies.insert(r.reply);
      else std::this_thread::sleep_for(100ms);
    }
    for (int i = 1; i < n && !replies.empty(); ++i) {
      ConnectResult r = TcpRequest(ip, port, 1000);
      if (r.error == 0) replies.insert(r.reply);
    }
    return replies;
  }

  testing::TempDir dir_;
  std::string prefix_;
  bool route_existed_ = false;
  std::unique_ptr<PrivateBpffs> bpffs_;
  std::unique_ptr<BackendNetns> net_;
  std::unique_ptr<EchoServers> servers_;
  std::unique_ptr<TestCgroup> cgroup_;
  std::unique_ptr<testing::KelpieServer> server_;
};

TEST_F(ApiServiceRoutingTest, ServiceAndEndpointSliceFromTheApiRouteConnections) {
  json svc = Call("POST", "/api/v1/namespaces/default/services",
                  {{"apiVersion", "v1"},
                   {"kind", "Service"},
                   {"metadata", {{"name", "echo"}}},
                   {"spec", {{"ports", json::array({{{"name", "tcp"}, {"port", 80}, {"targetPort", kBackendPort}}})}}}});
  std::string vip = svc["spec"].value("clusterIP", "");
  ASSERT_FALSE(vip.empty()) << svc.dump();
  json endpoints = json::array();
  for (const auto& address : net_->addresses()) {
    endpoints.push_back({{"addresses", json::array({address})}, {"conditions", {{"ready", true}}}});
  }
  json slice = Call("POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                    {{"apiVersion", "discovery.k8s.io/v1"},
                     {"kind", "EndpointSlice"},
                     {"metadata", {{"name", "echo-1"}, {"labels", {{"kubernetes.io/service-name", "echo"}}}}},
                     {"addressType", "IPv4"},
                     {"endpoints", endpoints},
                     {"ports", json::array({{{"name", "tcp"}, {"port", kBackendPort}, {"protocol", "TCP"}}})}});
  ASSERT_TRUE(slice.contains("metadata")) << slice.dump();

  // Safety first: an untranslated connection to the service range must fail
  // on this machine, never leave it.
  auto route = RunSubprocess({"ip", "route", "get", vip});
  ASSERT_TRUE(route.ok());
  // ("ip route get" answers "No route to host" for an unreachable route.)
  std::string answer = route->stdout_text + route->stderr_text;
  ASSERT_TRUE(answer.find("unreachable") != std::string::npos || answer.find("No route to host") != std::string::npos)
      << "the service range is not routed locally: " << answer;
  auto replies = Connect(vip, 80, 30);
  ASSERT_EQ(replies.size(), 30u) << "no connection to " << vip << ":80 succeeded\n" << server_->Log();
  std::set<std::string> distinct(replies.begin(), replies.end());
  EXPECT_GE(distinct.size(), 2u) << "30 connections all went to one backend";
  for (const auto& r : distinct) {
    EXPECT_TRUE(std::find(net_->addresses().begin(), net_->addresses().end(), r) != net_->addresses().end())
        << "reply \"" << r << "\" is not a backend address";
  }

  // Endpoints going away: new connections are refused at once.
  Call("DELETE", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/echo-1");
  int error = 0;
  for (int i = 0; i < 150; ++i) {
    error = TcpRequest(vip, 80, 1000).error;
    if (error == ECONNREFUSED) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(error, ECONNREFUSED);
}

TEST_F(ApiServiceRoutingTest, TheKubernetesServiceReachesTheApiServer) {
  // The first service address routes to the API server's advertised
  // address and port (plain bytes to a TLS port get an HTTP 400 back).
  auto route = RunSubprocess({"ip", "route", "get", "10.43.0.1"});
  ASSERT_TRUE(route.ok());
  std::string answer = route->stdout_text + route->stderr_text;
  ASSERT_TRUE(answer.find("unreachable") != std::string::npos || answer.find("No route to host") != std::string::npos)
      << answer;
  std::string reply;
  for (int i = 0; i < 100 && reply.empty(); ++i) {
    ConnectResult r = TcpRequest("10.43.0.1", 443, 1000);
    if (r.error == 0) reply = r.reply;
    else std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(reply.find("400"), std::string::npos) << reply;
}

}  // namespace
}  // namespace kelpie
