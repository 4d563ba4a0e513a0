// Service routing end to end in the kernel: the sock_lb programs attached
// to a test cgroup (never the host's root), backends in a test network
// namespace, ServiceProxy programming the pinned maps. Needs root.
#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/subprocess.h"
#include "control/service_proxy/service_cidr_route.h"
#include "control/service_proxy/service_proxy.h"
#include "dataplane/socket_lb_program.h"
#include "tests/integration/service_routing/service_routing_env.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using service_proxy::Endpoint;
using service_proxy::EndpointSlice;
using service_proxy::Protocol;
using service_proxy::Service;
using service_proxy::ServiceProxy;
using namespace service_routing_testing;

constexpr uint16_t kBackendTcpPort = 8080;
constexpr uint16_t kBackendUdpPort = 5353;

Service MakeService(const std::string& name, const std::string& vip) {
  Service s;
  s.namespace_name = "default";
  s.name = name;
  s.cluster_ips = {vip};
  s.ports = {{.name = "http", .protocol = Protocol::kTcp, .port = 80},
             {.name = "dns", .protocol = Protocol::kUdp, .port = 53}};
  return s;
}

EndpointSlice MakeSlice(const std::string& service, const std::vector<std::string>& ips) {
  EndpointSlice s;
  s.namespace_name = "default";
  s.name = service + "-1";
  s.service_name = service;
  for (const auto& ip : ips) {
    Endpoint e;
    e.addresses = {ip};
    e.node_name = "test-node";
    s.endpoints.push_back(e);
  }
  s.ports = {{.name = "http", .protocol = Protocol::kTcp, .port = kBackendTcpPort},
             {.name = "dns", .protocol = Protocol::kUdp, .port = kBackendUdpPort}};
  return s;
}

// Everything one test needs, torn down in reverse order of creation.
class ServiceRoutingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KELPIE_REQUIRE_PRIVILEGES();
    std::string id = std::to_string(::getpid() % 100000);
    // A /24 per process so parallel runs do not collide.
    prefix_ = absl::StrCat("10.42.", 200 + ::getpid() % 50);
    auto bpffs = PrivateBpffs::Mount();
    ASSERT_TRUE(bpffs.ok()) << bpffs.status();
    bpffs_ = std::move(*bpffs);
    auto net = BackendNetns::Create("kslb" + id, prefix_, 3);
    ASSERT_TRUE(net.ok()) << net.status();
    net_ = std::move(*net);
    auto servers = EchoServers::Start(net_->name(), net_->addresses(), kBackendTcpPort, kBackendUdpPort);
    ASSERT_TRUE(servers.ok()) << servers.status();
    servers_ = std::move(*servers);
    auto cg = TestCgroup::Create("kelpie-service-routing-" + id);
    ASSERT_TRUE(cg.ok()) << cg.status();
    cgroup_ = std::move(*cg);
    options_.pin_dir = bpffs_->path() + "/kelpie/test-node";
    options_.cgroup_path = cgroup_->path();
    ASSERT_NO_FATAL_FAILURE(StartAgent());
    ASSERT_TRUE(cgroup_->Enter().ok());
  }

  void TearDown() override {
    proxy_.reset();
    if (program_) {
      EXPECT_TRUE(program_->Uninstall().ok());
    } else if (!options_.pin_dir.empty()) {
      (void)dataplane::RemoveSocketLbPins(options_.pin_dir);
    }
    program_.reset();
    cgroup_.reset();
    servers_.reset();
    net_.reset();
    bpffs_.reset();
  }

  // "Agent start": load (or reuse) the program and pins, restore, sync.
  void StartAgent(const std::vector<std::pair<Service, EndpointSlice>>& objects = {}) {
    auto p = dataplane::SocketLbProgram::Install(options_);
    ASSERT_TRUE(p.ok()) << p.status();
    program_ = std::move(*p);
    registry_ = std::make_unique<prometheus::Registry>();
    proxy_ = std::make_unique<ServiceProxy>(program_->maps(), *registry_,
                                            service_proxy::ServiceProxyOptions{.node_name = "test-node"});
    ASSERT_TRUE(proxy_->Restore().ok());
    for (const auto& [svc, slice] : objects) {
      ASSERT_TRUE(proxy_->OnServiceUpdate(svc).ok());
      ASSERT_TRUE(proxy_->OnEndpointSliceUpdate(slice).ok());
    }
    ASSERT_TRUE(proxy_->OnInitialSyncDone().ok());
  }

  // "Agent exit": objects go, pins stay.
  void StopAgent() {
    proxy_.reset();
    registry_.reset();
    program_.reset();
  }

  std::string vip(int n) const { return absl::StrCat("10.43.", 200 + ::getpid() % 50, ".", n); }

  std::string prefix_;
  std::unique_ptr<PrivateBpffs> bpffs_;
  std::unique_ptr<BackendNetns> net_;
  std::unique_ptr<EchoServers> servers_;
  std::unique_ptr<TestCgroup> cgroup_;
  dataplane::SocketLbOptions options_;
  std::unique_ptr<dataplane::SocketLbProgram> program_;
  std::unique_ptr<prometheus::Registry> registry_;
  std::unique_ptr<ServiceProxy> proxy_;
};

TEST_F(ServiceRoutingTest, ClusterIpTcpReachesEveryBackendAndPeerIsTheService) {
  ASSERT_TRUE(proxy_->OnServiceUpdate(MakeService("web", vip(10))).ok());
  ASSERT_TRUE(proxy_->OnEndpointSliceUpdate(MakeSlice("web", net_->addresses())).ok());
  std::map<std::string, int> seen;
  for (int i = 0; i < 90; ++i) {
    ConnectResult r = TcpRequest(vip(10), 80);
    ASSERT_EQ(r.error, 0) << std::strerror(r.error);
    EXPECT_EQ(r.peer, vip(10) + ":80");  // getpeername shows the service
    seen[r.reply]++;
  }
  ASSERT_EQ(seen.size(), 3u);
  for (const auto& [backend, n] : seen) EXPECT_GE(n, 10) << backend;  // p(fail) per backend ~1e-6
  // Each TCP connect left a reverse entry (for getpeername), removed again
  // when the socket closed.
  auto counts = program_->maps().ReasonCounts();
  ASSERT_TRUE(counts.ok());
  EXPECT_GE((*counts)[KELPIE_LB_TRANSLATED], 90u);
  EXPECT_GE((*counts)[KELPIE_LB_REVNAT_APPLIED], 90u);
  EXPECT_GE((*counts)[KELPIE_LB_REVNAT_RELEASED], 90u);
  auto revnat = program_->maps().CountRevnatEntries();
  ASSERT_TRUE(revnat.ok());
  EXPECT_LT(*revnat, 10u);
  EXPECT_TRUE(proxy_->RefreshLruPressure().ok());
}

TEST_F(ServiceRoutingTest, ClusterIpUdpReachesEveryBackendAndRepliesComeFromTheService) {
  ASSERT_TRUE(proxy_->OnServiceUpdate(MakeService("dns", vip(11))).ok());
  ASSERT_TRUE(proxy_->OnEndpointSliceUpdate(MakeSlice("dns", net_->addresses())).ok());
  std::map<std::string, int> seen;
  for (int i = 0; i < 90; ++i) {
    DatagramResult r = UdpRequest(vip(11), 53);
    ASSERT_EQ(r.error, 0) << std::strerror(r.error);
    EXPECT_EQ(r.source, vip(11) + ":53");  // recvmsg4 reverse translation
    seen[r.reply]++;
  }
  ASSERT_EQ(seen.size(), 3u);
  for (const auto& [backend, n] : seen) EXPECT_GE(n, 10) << backend;
}

TEST_F(ServiceRoutingTest, ConnectedUdpPeerIsTheService) {
  ASSERT_TRUE(proxy_->OnServiceUpdate(MakeService("dns", vip(12))).ok());
  ASSERT_TRUE(proxy_->OnEndpointSliceUpdate(MakeSlice("dns", net_->addresses())).ok());
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(53);
  ::inet_pton(AF_INET, vip(12).c_str(), &a.sin_addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << std::strerror(errno);
  sockaddr_in peer{};
  socklen_t len = sizeof(peer);
  ASSERT_EQ(::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len), 0);
  EXPECT_EQ(peer.sin_addr.s_addr, a.sin_addr.s_addr);
  EXPECT_EQ(peer.sin_port, htons(53));
  timeval tv{.tv_sec = 2, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ASSERT_EQ(::send(fd, "hi", 2, 0), 2);
  char buf[64];
  ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  EXPECT_GT(n, 0) << std::strerror(errno);
  ::close(fd);
}

// Dual-stack sockets reach IPv4 services through IPv4-mapped addresses;
// the kernel runs only the v6 hooks for them.
TEST_F(ServiceRoutingTest, DualStackSocketsReachServicesThroughMappedAddresses) {
  ASSERT_TRUE(proxy_->OnServiceUpdate(MakeService("web", vip(17))).ok());
  ASSERT_TRUE(proxy_->OnEndpointSliceUpdate(MakeSlice("web", net_->addresses())).ok());
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(80);
  ASSERT_EQ(::inet_pton(AF_INET6, ("::ffff:" + vip(17)).c_str(), &a.sin6_addr), 1);
  std::set<std::string> seen;
  for (int i = 0; i < 45; ++i) {
    int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    timeval tv{.tv_sec = 2, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << std::strerror(errno);
    sockaddr_in6 peer{};
    socklen_t len = sizeof(peer);
    ASSERT_EQ(::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len), 0);
    EXPECT_EQ(std::memcmp(&peer.sin6_addr, &a.sin6_addr, sizeof(a.sin6_addr)), 0);
    EXPECT_EQ(peer.sin6_port, htons(80));
    (void)::send(fd, "hi\n", 3, MSG_NOSIGNAL);
    char buf[64];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    seen.insert(std::string(buf, static_cast<size_t>(n)));
    ::close(fd);
  }
  EXPECT_EQ(seen.size(), 3u);
  // UDP from a dual-stack socket: the reply comes from the mapped service.
  int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  timeval tv{.tv_sec = 2, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  a.sin6_port = htons(53);
  ASSERT_EQ(::sendto(fd, "hi", 2, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 2) << std::strerror(errno);
  char buf[64];
  sockaddr_in6 from{};
  socklen_t len = sizeof(from);
  ASSERT_GT(::recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len), 0) << std::strerror(errno);
  EXPECT_EQ(std::memcmp(&from.sin6_addr, &a.sin6_addr, sizeof(a.sin6_addr)), 0);
  EXPECT_EQ(from.sin6_port, htons(53));
  ::close(fd);
}

TEST_F(ServiceRoutingTest, ClientIpAffinityPinsTheClient) {
  Service s = MakeService("sticky", vip(13));
  s.session_affinity_client_ip = true;
  s.session_affinity_timeout_s = 300;
  ASSERT_TRUE(proxy_->OnServiceUpdate(s).ok());
  ASSERT_TRUE(proxy_->OnEndpointSliceUpdate(MakeSlice("sticky", net_->addresses())).ok());
  std::set<std::string> seen;
  for (int i = 0; i < 30; ++i) {
    ConnectResult r = TcpRequest(vip(13), 80);
    ASSERT_EQ(r.error, 0) << std::strerror(r.error);
    seen.insert(r.reply);
  }
  EXPECT_EQ(seen.size(), 1u);
}

TEST_F(ServiceRoutingTest, NoEndpointsIsRefusedImmediatelyAndCounted) {
  ASSERT_TRUE(proxy_->OnServiceUpdate(MakeService("empty", vip(14))).ok());
  auto id = proxy_->ServiceIdOf(
      {.address = inet_addr(vip(14).c_str()), .port = htons(80), .protocol = IPPROTO_TCP, .pad = 0});
  ASSERT_TRUE(id.has_value());
  auto before = program_->maps().ReasonCounts();
  ASSERT_TRUE(before.ok());
  ConnectResult r = TcpRequest(vip(14), 80);
  EXPECT_EQ(r.error, ECONNREFUSED) << std::strerror(r.error);
  DatagramResult u = UdpRequest(vip(14), 53);
  EXPECT_EQ(u.error, ECONNREFUSED) << std::strerror(u.error);
  auto after = program_->maps().ReasonCounts();
  ASSERT_TRUE(after.ok());
  EXPECT_GE((*after)[KELPIE_LB_REFUSE_NO_BACKEND] - (*before)[KELPIE_LB_REFUSE_NO_BACKEND], 1u);
  auto stats = program_->maps().ServiceStats(*id);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->no_backend, 1u);
  EXPECT_EQ(stats->translated, 0u);
}

TEST_F(ServiceRoutingTest, RemovedBackendGetsNoNewConnections) {
  ASSERT_TRUE(proxy_->OnServiceUpdate(MakeService("web", vip(15))).ok());
  ASSERT_TRUE(proxy_->OnEndpointSliceUpdate(MakeSlice("web", net_->addresses())).ok());
  // Readiness flip: the first backend leaves the ready set.
  EndpointSlice slice = MakeSlice("web", net_->addresses());
  slice.endpoints[0].conditions.ready = false;
  slice.endpoints[0].conditions.serving = false;
  ASSERT_TRUE(proxy_->OnEndpointSliceUpdate(slice).ok());
  std::set<std::string> seen;
  for (int i = 0; i < 60; ++i) {
    ConnectResult r = TcpRequest(vip(15), 80);
    ASSERT_EQ(r.error, 0) << std::strerror(r.error);
    seen.insert(r.reply);
  }
  EXPECT_EQ(seen.count(net_->addresses()[0]), 0u);
  EXPECT_EQ(seen.size(), 2u);
}

TEST_F(ServiceRoutingTest, AgentRestartsWhileAClientConnectsInALoopAndNothingFails) {
  Service svc = MakeService("web", vip(16));
  EndpointSlice slice = MakeSlice("web", net_->addresses());
  ASSERT_TRUE(proxy_->OnServiceUpdate(svc).ok());
  ASSERT_TRUE(proxy_->OnEndpointSliceUpdate(slice).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::string first_error;
  std::thread client([&] {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (int i = 0; i < 100000 && !stop && std::chrono::steady_clock::now() < deadline; ++i) {
      ConnectResult r = TcpRequest(vip(16), 80);
      if (r.error == 0 && !r.reply.empty()) {
        ++ok;
      } else if (failed++ == 0) {
        first_error = r.error ? std::strerror(r.error) : "empty reply";
      }
    }
  });
  for (int restart = 0; restart < 3; ++restart) {
    int before = ok.load();
    for (int i = 0; i < 200 && ok.load() < before + 20; ++i) ::usleep(10000);
    StopAgent();
    // Nothing runs: the pinned links and maps keep routing.
    int during = ok.load();
    for (int i = 0; i < 200 && ok.load() < during + 20; ++i) ::usleep(10000);
    EXPECT_GT(ok.load(), during) << "no connection succeeded while the agent was down";
    ASSERT_NO_FATAL_FAILURE(StartAgent({{svc, slice}}));
    EXPECT_TRUE(program_->reused_pins());
  }
  stop = true;
  client.join();
  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_GT(ok.load(), 60);
}

TEST_F(ServiceRoutingTest, ServiceCidrRouteFailsUnallocatedAddressesLocally) {
  ASSERT_TRUE(service_proxy::EnsureServiceCidrRoute("10.43.0.0/16", net_->name()).ok());
  ASSERT_TRUE(service_proxy::EnsureServiceCidrRoute("10.43.0.0/16", net_->name()).ok());  // idempotent
  auto shown = RunSubprocess({"ip", "-n", net_->name(), "route", "show", "10.43.0.0/16"});
  ASSERT_TRUE(shown.ok());
  EXPECT_NE(shown->stdout_text.find("unreachable 10.43.0.0/16"), std::string::npos) << shown->stdout_text;
  int err = 0;
  std::thread inside([&] {
    NetnsThreadScope scope(net_->name());
    ASSERT_TRUE(scope.ok());
    err = TcpRequest("10.43.77.7", 80).error;
  });
  inside.join();
  EXPECT_EQ(err, EHOSTUNREACH) << std::strerror(err);
  ASSERT_TRUE(service_proxy::RemoveServiceCidrRoute("10.43.0.0/16", net_->name()).ok());
  ASSERT_TRUE(service_proxy::RemoveServiceCidrRoute("10.43.0.0/16", net_->name()).ok());
  shown = RunSubprocess({"ip", "-n", net_->name(), "route", "show", "10.43.0.0/16"});
  ASSERT_TRUE(shown.ok());
  EXPECT_EQ(shown->stdout_text, "");
  EXPECT_FALSE(service_proxy::EnsureServiceCidrRoute("10.43.0.0/33").ok());
}

TEST(ServiceRoutingCleanupTest, EverythingTheEnvironmentMadeIsGoneAfterwards) {
  KELPIE_REQUIRE_PRIVILEGES();
  std::string pins, netns, cgroup, bpffs_path;
  {
    auto bpffs = PrivateBpffs::Mount();
    ASSERT_TRUE(bpffs.ok());
    bpffs_path = (*bpffs)->path();
    auto net = BackendNetns::Create("kslbc" + std::to_string(::getpid() % 100000),
                                    absl::StrCat("10.42.", 200 + ::getpid() % 50), 1);
    ASSERT_TRUE(net.ok()) << net.status();
    netns = "/run/netns/" + (*net)->name();
    auto cg = TestCgroup::Create("kelpie-service-routing-cleanup-" + std::to_string(::getpid()));
    ASSERT_TRUE(cg.ok());
    cgroup = (*cg)->path();
    dataplane::SocketLbOptions o;
    o.pin_dir = (*bpffs)->path() + "/kelpie/n";
    o.cgroup_path = cgroup;
    pins = o.pin_dir;
    auto p = dataplane::SocketLbProgram::Install(o);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(PathExists(pins + "/lb_services"));
    EXPECT_TRUE(PathExists(pins + "/link_connect4"));
    EXPECT_TRUE((*p)->Uninstall().ok());
    EXPECT_FALSE(PathExists(pins));
  }
  EXPECT_FALSE(PathExists(bpffs_path));
  EXPECT_FALSE(PathExists(netns));
  EXPECT_FALSE(PathExists(cgroup));
}

}  // namespace
}  // namespace kelpie
