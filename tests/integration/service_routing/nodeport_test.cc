// NodePort end to end in the kernel: an "external client" network namespace,
// a "node" namespace whose external veth and pod bridge carry the tc
// NodePort program, and backend namespaces behind the bridge. Traffic goes
// only to addresses inside these namespaces; everything is removed on exit,
// also when an assertion fails. Needs root.
#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "common/subprocess.h"
#include "control/service_proxy/node_port_proxy.h"
#include "dataplane/nodeport_program.h"
#include "tests/integration/service_routing/service_routing_env.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using dataplane::ConntrackTimeouts;
using dataplane::NodePortOptions;
using dataplane::NodePortProgram;
using namespace service_routing_testing;

constexpr uint16_t kBackendPort = 8080;
constexpr uint16_t kTcpNodePort = 30080;
constexpr uint16_t kUdpNodePort = 30053;
constexpr uint16_t kLocalNodePort = 30081;
constexpr uint16_t kEmptyNodePort = 30082;
const char* kClientIp = "10.231.1.2";
const char* kNodeIp = "10.231.1.1";
const char* kBridgeIp = "10.231.2.1";
const std::vector<std::string> kBackendIps = {"10.231.2.2", "10.231.2.3"};

uint32_t Ipv4(const std::string& s) {
  in_addr a = {};
  inet_pton(AF_INET, s.c_str(), &a);
  return a.s_addr;
}

// client netns --veth-- node netns (ext0 + bridge cni0) --veth-- backend netns.
class NodePortTopology {
 public:
  ~NodePortTopology() {
    // Deleting a namespace removes its veths, the bridge and their qdiscs.
    for (auto it = netns_.rbegin(); it != netns_.rend(); ++it) (void)Ip({"netns", "del", *it});
  }
  absl::Status Create() {
    std::string suffix = std::to_string(::getpid());
    client_ = "kelpie-npc-" + suffix;
    node_ = "kelpie-npn-" + suffix;
    for (const std::string& name : {client_, node_}) {
      if (absl::Status s = Ip({"netns", "add", name}); !s.ok()) return s;
      netns_.push_back(name);
      if (absl::Status s = Ip({"-n", name, "link", "set", "lo", "up"}); !s.ok()) return s;
    }
    std::vector<std::vector<std::string>> steps = {
        {"-n", client_, "link", "add", "eth0", "type", "veth", "peer", "name", "ext0", "netns", node_},
        {"-n", client_, "addr", "add", std::string(kClientIp) + "/24", "dev", "eth0", "nodad"},
        {"-n", client_, "link", "set", "eth0", "up"},
        {"-n", client_, "route", "add", "default", "via", kNodeIp},
        {"-n", node_, "addr", "add", std::string(kNodeIp) + "/24", "dev", "ext0", "nodad"},
        {"-n", node_, "link", "set", "ext0", "up"},
        {"-n", node_, "link", "add", "cni0", "type", "bridge"},
        {"-n", node_, "addr", "add", std::string(kBridgeIp) + "/24", "dev", "cni0"},
        {"-n", node_, "link", "set", "cni0", "up"},
        {"netns", "exec", node_, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
    };
    for (size_t i = 0; i < kBackendIps.size(); ++i) {
      std::string ns = absl::StrCat("kelpie-npb", i, "-", suffix);
      if (absl::Status s = Ip({"netns", "add", ns}); !s.ok()) return s;
      netns_.push_back(ns);
      backends_.push_back(ns);
      std::string port = absl::StrCat("veth-b", i);
      steps.push_back({"-n", ns, "link", "set", "lo", "up"});
      steps.push_back({"-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", node_});
      steps.push_back({"-n", ns, "addr", "add", kBackendIps[i] + "/24", "dev", "eth0", "nodad"});
      steps.push_back({"-n", ns, "link", "set", "eth0", "up"});
      steps.push_back({"-n", ns, "route", "add", "default", "via", kBridgeIp});
      steps.push_back({"-n", node_, "link", "set", port, "master", "cni0"});
      steps.push_back({"-n", node_, "link", "set", port, "up"});
    }
    for (const auto& step : steps) {
      if (absl::Status s = Ip(step); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  const std::string& client() const { return client_; }
  const std::string& node() const { return node_; }
  const std::vector<std::string>& backends() const { return backends_; }

 private:
  std::string client_, node_;
  std::vector<std::string> backends_;
  std::vector<std::string> netns_;
};

// Uninstalls from inside the node namespace (tc detach speaks netlink in
// the calling thread's namespace).
struct ProgramGuard {
  std::string netns;
  std::unique_ptr<NodePortProgram> program;
  ~ProgramGuard() { Reset(); }
  void Reset() {
    if (!program) return;
    NetnsThreadScope scope(netns);
    EXPECT_TRUE(program->Uninstall().ok());
    program.reset();
  }
};

absl::StatusOr<std::unique_ptr<NodePortProgram>> InstallIn(const std::string& netns, const std::string& pin_dir) {
  NetnsThreadScope scope(netns);
  if (!scope.ok()) return absl::InternalError("cannot enter " + netns);
  NodePortOptions o;
  o.pin_dir = pin_dir;
  o.interfaces = {"ext0", "cni0"};
  o.max_conntrack = 4096;
  return NodePortProgram::Install(o);
}

class NodePortTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KELPIE_REQUIRE_PRIVILEGES();
    ASSERT_TRUE(topology_.Create().ok());
    auto bpffs = PrivateBpffs::Mount();
    ASSERT_TRUE(bpffs.ok()) << bpffs.status();
    bpffs_ = std::move(*bpffs);
    pin_dir_ = bpffs_->path() + "/kelpie/test-node";
    auto program = InstallIn(topology_.node(), pin_dir_);
    ASSERT_TRUE(program.ok()) << program.status();
    guard_.netns = topology_.node();
    guard_.program = std::move(*program);
    for (size_t i = 0; i < kBackendIps.size(); ++i) {
      servers_.push_back(std::make_unique<PeerEchoServer>(topology_.backends()[i], kBackendIps[i], kBackendPort));
      ASSERT_TRUE(servers_.back()->ok());
    }
  }

  NodePortProgram& program() { return *guard_.program; }

  // One frontend on the node address with the given backends.
  void AddFrontend(uint32_t service_id, uint16_t port, uint8_t protocol, const std::vector<std::string>& backends,
                   bool local) {
    for (size_t i = 0; i < backends.size(); ++i) {
      kelpie_np_backend b = {.address = Ipv4(backends[i]), .port = htons(kBackendPort), .pad = 0};
      ASSERT_TRUE(program().UpsertBackend(service_id, static_cast<uint32_t>(i), b).ok());
    }
    kelpie_np_frontend_key k = {.address = Ipv4(kNodeIp), .port = htons(port), .protocol = protocol, .pad = 0};
    kelpie_np_frontend_value v = {.service_id = service_id,
                                  .backend_count = static_cast<uint32_t>(backends.size()),
                                  .snat_address = Ipv4(kNodeIp),
                                  .flags = static_cast<uint16_t>(local ? KELPIE_NP_FRONTEND_LOCAL : 0),
                                  .pad = 0};
    ASSERT_TRUE(program().UpsertFrontend(k, v).ok());
  }

  // "<backend> <source seen by backend>" of each TCP request from the client.
  std::vector<std::vector<std::string>> TcpFromClient(uint16_t port, int count, int timeout_ms = 2000) {
    std::vector<std::vector<std::string>> out;
    NetnsThreadScope scope(topology_.client());
    EXPECT_TRUE(scope.ok());
    for (int i = 0; i < count; ++i) {
      ConnectResult r = TcpRequest(kNodeIp, port, timeout_ms);
      last_error_ = r.error;
      if (r.error != 0) continue;
      EXPECT_EQ(r.peer, absl::StrCat(kNodeIp, ":", port));
      out.push_back(absl::StrSplit(std::string(absl::StripAsciiWhitespace(r.reply)), ' '));
    }
    return out;
  }

  NodePortTopology topology_;
  std::unique_ptr<PrivateBpffs> bpffs_;
  std::string pin_dir_;
  ProgramGuard guard_;
  std::vector<std::unique_ptr<PeerEchoServer>> servers_;
  int last_error_ = 0;
};

TEST_F(NodePortTest, ClusterPolicyTranslatesAndSnatsToTheNodeAddress) {
  AddFrontend(1, kTcpNodePort, IPPROTO_TCP, kBackendIps, /*local=*/false);
  std::set<std::string> served;
  auto replies = TcpFromClient(kTcpNodePort, 24);
  ASSERT_EQ(replies.size(), 24u) << "last error " << std::strerror(last_error_);
  for (const auto& r : replies) {
    ASSERT_EQ(r.size(), 2u);
    served.insert(r[0]);
    EXPECT_EQ(r[1], kNodeIp) << "the backend must see the node's address (SNAT)";
  }
  EXPECT_EQ(served, std::set<std::string>(kBackendIps.begin(), kBackendIps.end()));
  auto counts = program().ReasonCounts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[KELPIE_NP_NEW_CONNECTION], 24u);
  EXPECT_GT((*counts)[KELPIE_NP_CT_REPLY], 0u);
}

TEST_F(NodePortTest, LocalPolicyKeepsTheClientAddressAndUsesOnlyLocalBackends) {
  // The control plane lists only this node's backends for Local.
  AddFrontend(2, kLocalNodePort, IPPROTO_TCP, {kBackendIps[1]}, /*local=*/true);
  auto replies = TcpFromClient(kLocalNodePort, 8);
  ASSERT_EQ(replies.size(), 8u) << "last error " << std::strerror(last_error_);
  for (const auto& r : replies) {
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0], kBackendIps[1]);
    EXPECT_EQ(r[1], kClientIp) << "Local must preserve the client's source address";
  }
}

TEST_F(NodePortTest, UdpIsTranslatedAndRepliesComeFromTheNodePort) {
  AddFrontend(3, kUdpNodePort, IPPROTO_UDP, kBackendIps, /*local=*/false);
  NetnsThreadScope scope(topology_.client());
  ASSERT_TRUE(scope.ok());
  for (int i = 0; i < 6; ++i) {
    DatagramResult r = UdpRequest(kNodeIp, kUdpNodePort, 2000);
    ASSERT_EQ(r.error, 0) << std::strerror(r.error);
    EXPECT_EQ(r.source, absl::StrCat(kNodeIp, ":", kUdpNodePort)) << "reply must be reverse-translated";
    std::vector<std::string> parts = absl::StrSplit(std::string(absl::StripAsciiWhitespace(r.reply)), ' ');
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_EQ(parts[1], kNodeIp);
  }
}

TEST_F(NodePortTest, NoBackendsDropsAndCounts) {
  AddFrontend(4, kEmptyNodePort, IPPROTO_TCP, {}, /*local=*/false);
  auto replies = TcpFromClient(kEmptyNodePort, 1, /*timeout_ms=*/500);
  EXPECT_TRUE(replies.empty());
  EXPECT_NE(last_error_, 0);
  auto counts = program().ReasonCounts();
  ASSERT_TRUE(counts.ok());
  EXPECT_GT((*counts)[KELPIE_NP_DROP_NO_BACKEND], 0u);
  EXPECT_EQ((*counts)[KELPIE_NP_NEW_CONNECTION], 0u);
}

TEST_F(NodePortTest, ConntrackEntriesAreCollectedByAge) {
  AddFrontend(5, kTcpNodePort, IPPROTO_TCP, kBackendIps, /*local=*/false);
  ASSERT_EQ(TcpFromClient(kTcpNodePort, 4).size(), 4u);
  auto entries = program().ConntrackEntries();
  ASSERT_TRUE(entries.ok());
  // Two entries (client side, reply side) per connection.
  EXPECT_EQ(entries->size(), 8u);
  for (const auto& e : *entries) {
    EXPECT_EQ(e.value.state, KELPIE_NP_CT_CLOSING) << "connections were closed with FIN";
  }
  // Fresh entries survive the default timeouts ...
  auto removed = program().CollectGarbage(ConntrackTimeouts{});
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 0u);
  // ... and go once older than the closing timeout.
  ConntrackTimeouts expired{.tcp_new_ns = 0, .tcp_established_ns = 0, .tcp_closing_ns = 0, .udp_ns = 0};
  removed = program().CollectGarbage(expired);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 8u);
  entries = program().ConntrackEntries();
  ASSERT_TRUE(entries.ok());
  EXPECT_TRUE(entries->empty());
}

TEST_F(NodePortTest, RestartReusesPinnedMapsAndKeepsServing) {
  AddFrontend(6, kTcpNodePort, IPPROTO_TCP, kBackendIps, /*local=*/false);
  ASSERT_EQ(TcpFromClient(kTcpNodePort, 2).size(), 2u);
  // A second instance (the restarted agent) takes over the pins and the
  // tc filters in place; the first is dropped without uninstalling.
  auto second = InstallIn(topology_.node(), pin_dir_);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE((*second)->reused_pins());
  guard_.program.reset();
  guard_.program = std::move(*second);
  auto replies = TcpFromClient(kTcpNodePort, 4);
  EXPECT_EQ(replies.size(), 4u) << "frontends must survive the restart";
}

TEST_F(NodePortTest, ServicesAndEndpointSlicesProgramTheNodePort) {
  using namespace service_proxy;
  NodePortProxy proxy(program(), {.node_name = "test-node", .node_addresses = {kNodeIp}});
  Service svc;
  svc.namespace_name = "default";
  svc.name = "web";
  svc.type = "NodePort";
  svc.cluster_ips = {"10.43.0.20"};
  svc.ports = {{.name = "http", .protocol = Protocol::kTcp, .port = 80, .node_port = kTcpNodePort}};
  svc.external_traffic_local = true;
  EndpointSlice slice;
  slice.namespace_name = "default";
  slice.name = "web-1";
  slice.service_name = "web";
  Endpoint here;
  here.addresses = {kBackendIps[0]};
  here.node_name = "test-node";
  Endpoint elsewhere;
  elsewhere.addresses = {kBackendIps[1]};
  elsewhere.node_name = "other-node";
  slice.endpoints = {here, elsewhere};
  slice.ports = {{.name = "http", .protocol = Protocol::kTcp, .port = kBackendPort}};
  ASSERT_TRUE(proxy.OnServiceUpdate(svc).ok());
  ASSERT_TRUE(proxy.OnEndpointSliceUpdate(slice).ok());
  for (const auto& r : TcpFromClient(kTcpNodePort, 6)) {
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0], kBackendIps[0]) << "Local: only this node's endpoint";
    EXPECT_EQ(r[1], kClientIp);
  }
  EXPECT_EQ(last_error_, 0);
  // Closed flows' entries would pin a reused client port to its old
  // translation: sweep them between phases.
  const ConntrackTimeouts expired{.tcp_new_ns = 0, .tcp_established_ns = 0, .tcp_closing_ns = 0, .udp_ns = 0};
  ASSERT_TRUE(program().CollectGarbage(expired).ok());
  // Cluster policy: both endpoints, SNAT to the node address.
  svc.external_traffic_local = false;
  ASSERT_TRUE(proxy.OnServiceUpdate(svc).ok());
  std::set<std::string> served;
  auto replies = TcpFromClient(kTcpNodePort, 16);
  ASSERT_EQ(replies.size(), 16u);
  for (const auto& r : replies) {
    served.insert(r[0]);
    EXPECT_EQ(r[1], kNodeIp);
  }
  EXPECT_EQ(served.size(), 2u);
  // Service gone: the NodePort answers no more.
  ASSERT_TRUE(proxy.OnServiceDelete("default", "web").ok());
  ASSERT_TRUE(program().CollectGarbage(expired).ok());
  EXPECT_TRUE(TcpFromClient(kTcpNodePort, 1, 500).empty());
}

TEST_F(NodePortTest, UninstallRemovesFiltersQdiscsAndPins) {
  guard_.Reset();
  EXPECT_FALSE(PathExists(pin_dir_ + "/np_conntrack"));
  EXPECT_FALSE(PathExists(pin_dir_));
  auto qdiscs = RunSubprocess({"tc", "-n", topology_.node(), "qdisc", "show", "dev", "ext0"});
  ASSERT_TRUE(qdiscs.ok());
  ASSERT_TRUE(qdiscs->Succeeded()) << qdiscs->stderr_text;
  EXPECT_EQ(qdiscs->stdout_text.find("clsact"), std::string::npos) << qdiscs->stdout_text;
}

}  // namespace
}  // namespace kelpie
