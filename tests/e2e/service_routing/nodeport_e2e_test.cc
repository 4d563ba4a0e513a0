// NodePort end to end: a Service of type NodePort and its EndpointSlice are
// created through the API of a real `kelpie server`, whose service routing
// (--nodeport-interfaces) attaches the NodePort tc program to a veth this
// test made. An "external host" network namespace behind that veth connects
// to <node address>:<nodePort>; backends live in a second namespace behind
// another test veth (--nodeport-backend-interfaces, where their replies
// arrive). The node is this host's namespace, but only test veths carry the
// program and traffic goes only to addresses inside the test namespaces.
// The namespaces (and with them the veths, qdiscs and filters) and the
// private bpffs holding the pins are removed at the end, also on failure.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
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
constexpr const char* kNodeName = "nodeport-node";

// One request's outcome: which backend served it and the source it saw.
struct Served {
  std::string backend;
  std::string source;
};

class NodePortE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KELPIE_REQUIRE_PRIVILEGES();
    int n = ::getpid() % 200 + 20;
    std::string id = std::to_string(::getpid() % 100000);
    client_prefix_ = absl::StrCat("10.232.", n);
    backend_prefix_ = absl::StrCat("10.233.", n);
    auto route = RunSubprocess({"ip", "route", "show", "10.43.0.0/16"});
    route_existed_ = route.ok() && !route->stdout_text.empty();
    auto bpffs = PrivateBpffs::Mount();
    ASSERT_TRUE(bpffs.ok()) << bpffs.status();
    bpffs_ = std::move(*bpffs);
    // The external host: one address, reaching the node's end of its veth.
    auto client = BackendNetns::Create("knpc" + id, client_prefix_, 1);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
    auto backends = BackendNetns::Create("knpb" + id, backend_prefix_, 2);
    ASSERT_TRUE(backends.ok()) << backends.status();
    backends_ = std::move(*backends);
    // Replies to the external client (policy Local keeps its address) go
    // back through the node.
    ASSERT_TRUE(Ip({"-n", backends_->name(), "route", "add", "default", "via", backend_prefix_ + ".1"}).ok());
    for (const std::string& address : backends_->addresses()) {
      servers_.push_back(std::make_unique<PeerEchoServer>(backends_->name(), address, kBackendPort));
      ASSERT_TRUE(servers_.back()->ok());
    }
    auto cg = TestCgroup::Create("kelpie-nodeport-e2e-" + id);
    ASSERT_TRUE(cg.ok()) << cg.status();
    cgroup_ = std::move(*cg);
    StartServer();
  }

  // `data` names the server's data folder: a fresh one is an API that
  // knows nothing of what the previous server programmed.
  void StartServer(const std::string& data = "data") {
    auto s = testing::KelpieServer::Start(
        dir_.File(data), testing::FreeTcpPort(), dir_.File(absl::StrCat("server", ++starts_, ".log")),
        {"--service-routing=true", "--service-routing-cgroup=" + cgroup_->path(), "--bpffs=" + bpffs_->path(),
         absl::StrCat("--node-name=", kNodeName), "--nodeport-interfaces=" + client_->host_veth(),
         "--nodeport-backend-interfaces=" + backends_->host_veth(), "--service-routing-maintenance-interval=1"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    for (int i = 0; i < 300 && server_->Log().find("NodePort program on") == std::string::npos; ++i) {
      std::this_thread::sleep_for(100ms);
    }
    ASSERT_NE(server_->Log().find("NodePort program on"), std::string::npos) << server_->Log();
  }

  void TearDown() override {
    server_.reset();
    cgroup_.reset();
    servers_.clear();
    backends_.reset();  // deleting the namespaces removes the veths with their qdiscs and filters
    client_.reset();
    bpffs_.reset();     // the pins go with the private bpffs
    if (!route_existed_) (void)RunSubprocess({"ip", "route", "del", "unreachable", "10.43.0.0/16"});
  }

  json Call(const std::string& method, const std::string& target, const json& body = nullptr) {
    auto client = server_->AdminClient();
    EXPECT_TRUE(client.ok());
    if (!client.ok()) return json::object();
    auto r = (*client)->Do({method, target, {{"Content-Type", "application/json"}}, body.is_null() ? "" : body.dump()});
    EXPECT_TRUE(r.ok()) << r.status();
    return json::parse(r.ok() ? r->body : "{}", nullptr, false);
  }

  std::string Metrics() {
    auto client = server_->AdminClient();
    if (!client.ok()) return "";
    auto r = (*client)->Do({"GET", "/metrics", {}, ""});
    return r.ok() ? r->body : "";
  }

  std::string NodeAddress() const { return client_prefix_ + ".1"; }
  std::string ClientAddress() const { return client_->addresses()[0]; }
  const std::string& Local() const { return backends_->addresses()[0]; }   // on this node
  const std::string& Remote() const { return backends_->addresses()[1]; }  // "on another node"

  // One TCP request from the external host to the NodePort.
  std::optional<Served> Request(uint16_t node_port, int timeout_ms = 1000, const std::string& address = "") {
    NetnsThreadScope scope(client_->name());
    if (!scope.ok()) return std::nullopt;
    ConnectResult r = TcpRequest(address.empty() ? NodeAddress() : address, node_port, timeout_ms);
    if (r.error != 0) return std::nullopt;
    std::vector<std::string> parts = absl::StrSplit(std::string(absl::StripAsciiWhitespace(r.reply)), ' ');
    if (parts.size() != 2) return std::nullopt;
    return Served{parts[0], parts[1]};
  }

  // Waits (bounded) until `want` consecutive requests all satisfy `ok`;
  // returns what the last requests looked like when it never happened.
  std::string WaitForConsecutive(uint16_t node_port, int want, const std::function<bool(const Served&)>& ok,
                                 const std::string& address = "") {
    int streak = 0;
    std::string last;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto s = Request(node_port, 1000, address);
      if (s && ok(*s)) {
        if (++streak == want) return "";
        continue;
      }
      streak = 0;
      last = s ? absl::StrCat("backend ", s->backend, " saw source ", s->source) : "request failed";
      std::this_thread::sleep_for(50ms);
    }
    return "never " + std::to_string(want) + " in a row; last: " + last;
  }

  json Slice(bool local_ready, bool remote_ready) {
    json endpoints = json::array();
    endpoints.push_back({{"addresses", json::array({Local()})},
                         {"nodeName", kNodeName},
                         {"conditions", {{"ready", local_ready}}}});
    endpoints.push_back({{"addresses", json::array({Remote()})},
                         {"nodeName", "other-node"},
                         {"conditions", {{"ready", remote_ready}}}});
    return {{"apiVersion", "discovery.k8s.io/v1"},
            {"kind", "EndpointSlice"},
            {"metadata", {{"name", "web-1"}, {"labels", {{"kubernetes.io/service-name", "web"}}}}},
            {"addressType", "IPv4"},
            {"endpoints", endpoints},
            {"ports", json::array({{{"name", "http"}, {"port", kBackendPort}, {"protocol", "TCP"}}})}};
  }

  void PutSlice(bool local_ready, bool remote_ready) {
    json current = Call("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-1");
    json slice = Slice(local_ready, remote_ready);
    slice["metadata"]["resourceVersion"] = current["metadata"].value("resourceVersion", "");
    json r = Call("PUT", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-1", slice);
    ASSERT_EQ(r.value("kind", ""), "EndpointSlice") << r.dump();
  }

  void SetExternalTrafficPolicy(const std::string& policy) {
    json svc = Call("GET", "/api/v1/namespaces/default/services/web");
    svc["spec"]["externalTrafficPolicy"] = policy;
    json r = Call("PUT", "/api/v1/namespaces/default/services/web", svc);
    ASSERT_EQ(r["spec"].value("externalTrafficPolicy", ""), policy) << r.dump();
  }

  // Creates the NodePort Service "web" and its slice; returns the nodePort.
  uint16_t CreateWeb() {
    json svc = Call("POST", "/api/v1/namespaces/default/services",
                    {{"apiVersion", "v1"},
                     {"kind", "Service"},
                     {"metadata", {{"name", "web"}}},
                     {"spec",
                      {{"type", "NodePort"},
                       {"ports", json::array({{{"name", "http"}, {"port", 80}, {"targetPort", kBackendPort}}})}}}});
    uint16_t node_port = svc["spec"]["ports"][0].value("nodePort", 0);
    EXPECT_NE(node_port, 0) << svc.dump();
    json slice = Call("POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", Slice(true, true));
    EXPECT_EQ(slice.value("kind", ""), "EndpointSlice") << slice.dump();
    return node_port;
  }

  testing::TempDir dir_;
  std::string client_prefix_, backend_prefix_;
  bool route_existed_ = false;
  int starts_ = 0;
  std::unique_ptr<PrivateBpffs> bpffs_;
  std::unique_ptr<BackendNetns> client_;
  std::unique_ptr<BackendNetns> backends_;
  std::vector<std::unique_ptr<PeerEchoServer>> servers_;
  std::unique_ptr<TestCgroup> cgroup_;
  std::unique_ptr<testing::KelpieServer> server_;
};

TEST_F(NodePortE2eTest, ExternalHostReachesTheNodePortWithBothTrafficPolicies) {
  uint16_t node_port = CreateWeb();
  ASSERT_NE(node_port, 0);

  // Cluster (the default): every ready endpoint, the backend sees the node.
  std::set<std::string> served;
  std::string err = WaitForConsecutive(node_port, 20, [&](const Served& s) {
    served.insert(s.backend);
    return s.source == NodeAddress();
  });
  ASSERT_EQ(err, "") << server_->Log();
  EXPECT_EQ(served, std::set<std::string>(backends_->addresses().begin(), backends_->addresses().end()))
      << "Cluster policy must spread over both endpoints";

  // Local: only this node's endpoint, and it sees the external client.
  SetExternalTrafficPolicy("Local");
  err = WaitForConsecutive(node_port, 15, [&](const Served& s) {
    return s.backend == Local() && s.source == ClientAddress();
  });
  EXPECT_EQ(err, "") << "Local must keep the client's source address and use only the local endpoint";

  // Back to Cluster, then a readiness flip takes the local endpoint out.
  SetExternalTrafficPolicy("Cluster");
  PutSlice(/*local_ready=*/false, /*remote_ready=*/true);
  err = WaitForConsecutive(node_port, 20, [&](const Served& s) {
    return s.backend == Remote() && s.source == NodeAddress();
  });
  EXPECT_EQ(err, "") << "the unready endpoint must get no new connections";

  // Metrics of the NodePort dataplane are exported.
  std::string metrics;
  for (int i = 0; i < 100; ++i) {
    metrics = Metrics();
    if (metrics.find("kelpie_nodeport_packets_total{reason=\"new_connection\"} 0") == std::string::npos &&
        metrics.find("kelpie_nodeport_packets_total{reason=\"new_connection\"}") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(metrics.find("kelpie_nodeport_packets_total{reason=\"new_connection\"}"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("kelpie_nodeport_packets_total{reason=\"new_connection\"} 0"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("kelpie_nodeport_frontends 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kelpie_nodeport_map_pressure{map=\"np_conntrack\"}"), std::string::npos);

  // Deleted: the NodePort answers no more.
  Call("DELETE", "/api/v1/namespaces/default/services/web");
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = !Request(node_port, 300).has_value();
    if (!gone) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(gone);
}

TEST_F(NodePortE2eTest, NodePortsKeepServingWhileTheServerRestarts) {
  uint16_t node_port = CreateWeb();
  ASSERT_NE(node_port, 0);
  ASSERT_EQ(WaitForConsecutive(node_port, 5, [](const Served&) { return true; }), "") << server_->Log();
  // No process: the pinned maps and the tc filters keep translating.
  server_.reset();
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(Request(node_port).has_value()) << "request " << i << " while stopped";
  StartServer();
  EXPECT_NE(server_->Log().find("NodePort program on " + client_->host_veth() + " (reusing pinned maps)"),
            std::string::npos)
      << server_->Log();
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(Request(node_port).has_value()) << "request " << i << " after restart";
  // The restarted server still follows the API: the readiness flip applies.
  PutSlice(/*local_ready=*/true, /*remote_ready=*/false);
  EXPECT_EQ(WaitForConsecutive(node_port, 15, [&](const Served& s) { return s.backend == Local(); }), "");

  // A server whose API has no such Service (a fresh data folder) adopts the
  // pinned maps and, once its informers listed everything, removes the
  // stale NodePort.
  server_.reset();
  StartServer("data-without-services");
  EXPECT_NE(server_->Log().find("reusing pinned maps"), std::string::npos) << server_->Log();
  bool gone = false;
  for (int i = 0; i < 150 && !gone; ++i) {
    gone = !Request(node_port, 300).has_value();
    if (!gone) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(gone) << "the stale NodePort must go after the initial sync";
}

TEST_F(NodePortE2eTest, LoadBalancerServiceIsReachedOnItsExternalIpAndNodePort) {
  // The external IP is an address of the backend namespace, so a packet the
  // program did not translate could only ever reach the test's namespaces.
  const std::string external_ip = backend_prefix_ + ".100";
  ASSERT_TRUE(Ip({"-n", backends_->name(), "addr", "add", external_ip + "/32", "dev", "eth0"}).ok());
  ASSERT_TRUE(Ip({"-n", client_->name(), "route", "add", external_ip + "/32", "via", NodeAddress()}).ok());
  json svc = Call("POST", "/api/v1/namespaces/default/services",
                  {{"apiVersion", "v1"},
                   {"kind", "Service"},
                   {"metadata", {{"name", "web"}}},
                   {"spec",
                    {{"type", "LoadBalancer"},
                     {"externalIPs", json::array({external_ip})},
                     {"ports", json::array({{{"name", "http"}, {"port", 80}, {"targetPort", kBackendPort}}})}}}});
  uint16_t node_port = svc["spec"]["ports"][0].value("nodePort", 0);
  ASSERT_NE(node_port, 0) << "a LoadBalancer service gets a NodePort: " << svc.dump();
  json slice = Call("POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", Slice(true, true));
  ASSERT_EQ(slice.value("kind", ""), "EndpointSlice") << slice.dump();
  // externalIP:port, translated on the node (the backend sees the node's
  // address: SNAT), and the NodePort of the same service.
  std::set<std::string> served;
  EXPECT_EQ(WaitForConsecutive(80, 15,
                               [&](const Served& s) {
                                 served.insert(s.backend);
                                 return s.source == NodeAddress();
                               },
                               external_ip),
            "")
      << server_->Log();
  EXPECT_EQ(served.size(), 2u);
  EXPECT_EQ(WaitForConsecutive(node_port, 5, [&](const Served& s) { return s.source == NodeAddress(); }), "");

  // A node process (this test, moved into the cgroup the socket balancer
  // serves) reaches <node address>:<nodePort> as well: its connect is
  // translated at the socket (untranslated, the node's own address has no
  // listener on that port and refuses).
  ASSERT_TRUE(cgroup_->Enter().ok());
  std::set<std::string> local_served;
  for (int i = 0; i < 20; ++i) {
    ConnectResult r = TcpRequest(NodeAddress(), node_port, 1000);
    ASSERT_EQ(r.error, 0) << "connect " << i << ": " << std::strerror(r.error);
    EXPECT_EQ(r.peer, absl::StrCat(NodeAddress(), ":", node_port)) << "getpeername shows the NodePort";
    std::vector<std::string> parts = absl::StrSplit(std::string(absl::StripAsciiWhitespace(r.reply)), ' ');
    ASSERT_EQ(parts.size(), 2u);
    local_served.insert(parts[0]);
  }
  EXPECT_EQ(local_served.size(), 2u);
}

TEST_F(NodePortE2eTest, InternalTrafficPolicyLocalUsesOnlyThisNodesEndpoints) {
  // In-cluster clients (here: this test process, moved into the cgroup the
  // socket load balancer serves) reach a ClusterIP with
  // internalTrafficPolicy Local only on endpoints of their own node.
  json svc = Call("POST", "/api/v1/namespaces/default/services",
                  {{"apiVersion", "v1"},
                   {"kind", "Service"},
                   {"metadata", {{"name", "web"}}},
                   {"spec",
                    {{"internalTrafficPolicy", "Local"},
                     {"ports", json::array({{{"name", "http"}, {"port", 80}, {"targetPort", kBackendPort}}})}}}});
  std::string vip = svc["spec"].value("clusterIP", "");
  ASSERT_FALSE(vip.empty()) << svc.dump();
  json slice = Call("POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", Slice(true, true));
  ASSERT_EQ(slice.value("kind", ""), "EndpointSlice") << slice.dump();
  ASSERT_TRUE(cgroup_->Enter().ok());
  std::set<std::string> served;
  int ok = 0;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (ok < 20 && std::chrono::steady_clock::now() < deadline) {
    ConnectResult r = TcpRequest(vip, 80, 1000);
    if (r.error != 0) {
      std::this_thread::sleep_for(100ms);
      continue;
    }
    ++ok;
    std::vector<std::string> parts = absl::StrSplit(std::string(absl::StripAsciiWhitespace(r.reply)), ' ');
    served.insert(parts[0]);
  }
  ASSERT_EQ(ok, 20) << server_->Log();
  EXPECT_EQ(served, std::set<std::string>{Local()});
  // Without a local endpoint the service refuses in-cluster connections,
  // even though another node has a ready one.
  PutSlice(/*local_ready=*/false, /*remote_ready=*/true);
  int error = 0;
  for (int i = 0; i < 150 && error != ECONNREFUSED; ++i) {
    error = TcpRequest(vip, 80, 1000).error;
    if (error != ECONNREFUSED) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(error, ECONNREFUSED);
}

}  // namespace
}  // namespace kelpie
