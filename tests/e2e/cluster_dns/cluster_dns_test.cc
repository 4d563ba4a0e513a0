// `kelpie server` answers cluster DNS on the cluster DNS address of its own
// node: kube-system/kube-dns exists with that address, a local link carries
// it, and names of Services created with kubectl resolve — from the node and
// from a network namespace standing in for a pod (a veth into the host, the
// default route through it, as the CNI bridge gives pods). Queries are only
// for names inside the cluster zone, so nothing is forwarded off the node.
// The DNS address and link name are the test's own (not the defaults), so a
// cluster running on the machine is not disturbed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/subprocess.h"
#include "control/dns/node_dns.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string Trimmed(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

class ClusterDnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KELPIE_REQUIRE_PRIVILEGES();
    if (!FindExecutable("dig")) GTEST_SKIP() << "dig (bind9-dnsutils) is not installed";
    const int id = ::getpid() % 200;
    address_ = absl::StrCat("10.43.254.", id + 10);
    link_ = absl::StrCat("kdns", ::getpid() % 100000);
    netns_ = absl::StrCat("kdnspod", ::getpid() % 100000);
    host_veth_ = absl::StrCat("kdh", ::getpid() % 100000);
    veth_prefix_ = absl::StrCat("10.42.253.", (id % 60) * 4);
    auto s = testing::KelpieServer::Start(dir_.File("data"), testing::FreeTcpPort(), dir_.File("server.log"),
                                          {"--dns=true", "--cluster-dns=" + address_, "--dns-link=" + link_});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    for (int i = 0; i < 200 && server_->Log().find("cluster DNS: serving") == std::string::npos; ++i) {
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_NE(server_->Log().find("cluster DNS: serving"), std::string::npos) << server_->Log();
  }

  void TearDown() override {
    server_.reset();  // SIGKILL: the link stays behind unless removed here
    (void)dns::RemoveDnsLink(link_);
    (void)RunSubprocess({"ip", "link", "del", host_veth_});
    (void)RunSubprocess({"ip", "netns", "del", netns_});
  }

  // `dig +short` of name/type at the test's DNS address; `in_netns` runs it
  // inside the pod stand-in.
  std::string Dig(const std::string& name, const std::string& type = "A", bool in_netns = false) {
    std::vector<std::string> argv;
    if (in_netns) argv = {"ip", "netns", "exec", netns_};
    for (const char* a : {"dig", "+short", "+time=2", "+tries=1"}) argv.push_back(a);
    argv.push_back("@" + address_);
    argv.push_back(name);
    argv.push_back(type);
    auto r = RunSubprocess(argv);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? Trimmed(r->stdout_text) : "";
  }

  // dig's status line (NOERROR, NXDOMAIN, ...).
  std::string DigStatus(const std::string& name) {
    auto r = RunSubprocess({"dig", "+time=2", "+tries=1", "@" + address_, name, "A"});
    if (!r.ok()) return "";
    auto pos = r->stdout_text.find("status: ");
    if (pos == std::string::npos) return "";
    return r->stdout_text.substr(pos + 8, r->stdout_text.find(',', pos) - pos - 8);
  }

  std::string WaitForAnswer(const std::string& name, const std::string& want) {
    std::string got;
    for (int i = 0; i < 100; ++i) {
      got = Dig(name);
      if (got == want) break;
      std::this_thread::sleep_for(100ms);
    }
    return got;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::KelpieServer> server_;
  std::string address_, link_, netns_, host_veth_, veth_prefix_;
};

TEST_F(ClusterDnsTest, KubeDnsServiceHoldsTheAddressOnALocalLink) {
  auto svc = server_->Kubectl({"get", "service", "-n", "kube-system", "kube-dns", "-o", "json"});
  ASSERT_EQ(svc.exit_code, 0) << svc.stderr_text;
  json s = json::parse(svc.stdout_text);
  EXPECT_EQ(s["spec"]["clusterIP"], address_);
  EXPECT_EQ(s["spec"]["ports"].size(), 2u);
  auto route = RunSubprocess({"ip", "route", "get", address_});
  ASSERT_TRUE(route.ok());
  // Local delivery: the address can never follow the default route.
  EXPECT_EQ(route->stdout_text.rfind("local " + address_, 0), 0u) << route->stdout_text;
  auto link = RunSubprocess({"ip", "-o", "addr", "show", "dev", link_});
  ASSERT_TRUE(link.ok());
  EXPECT_NE(link->stdout_text.find(address_ + "/32"), std::string::npos) << link->stdout_text;
}

TEST_F(ClusterDnsTest, ServicesResolveFromTheNodeAndFromAPod) {
  const std::string kubernetes = WaitForAnswer("kubernetes.default.svc.cluster.local", "10.43.0.1");
  EXPECT_EQ(kubernetes, "10.43.0.1");
  EXPECT_EQ(Dig("kube-dns.kube-system.svc.cluster.local"), address_);

  auto created = server_->Kubectl({"create", "service", "clusterip", "web", "--tcp=80:8080", "-o", "json",
                                   "--validate=false"});
  if (created.exit_code != 0) {
    // Typed generators need protobuf: create from a manifest instead.
    created = server_->Kubectl({"create", "-f", "-", "-o", "json", "--validate=false"}, "",
                               R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},
                                   "spec":{"selector":{"app":"web"},"ports":[{"port":80,"targetPort":8080}]}})");
  }
  ASSERT_EQ(created.exit_code, 0) << created.stderr_text;
  const std::string ip = json::parse(created.stdout_text)["spec"]["clusterIP"];
  EXPECT_EQ(WaitForAnswer("web.default.svc.cluster.local", ip), ip);

  // A pod's view: its own network namespace, reaching the node over a veth.
  ASSERT_TRUE(RunSubprocess({"ip", "netns", "add", netns_}).ok());
  auto ok = [](const absl::StatusOr<SubprocessResult>& r) { return r.ok() && r->exit_code == 0; };
  const std::string host_ip = absl::StrCat(veth_prefix_.substr(0, veth_prefix_.rfind('.') + 1),
                                           std::stoi(veth_prefix_.substr(veth_prefix_.rfind('.') + 1)) + 1);
  const std::string pod_ip = absl::StrCat(veth_prefix_.substr(0, veth_prefix_.rfind('.') + 1),
                                          std::stoi(veth_prefix_.substr(veth_prefix_.rfind('.') + 1)) + 2);
  ASSERT_TRUE(ok(RunSubprocess({"ip", "link", "add", host_veth_, "type", "veth", "peer", "name", "eth0", "netns",
                                netns_})));
  ASSERT_TRUE(ok(RunSubprocess({"ip", "addr", "add", host_ip + "/30", "dev", host_veth_})));
  ASSERT_TRUE(ok(RunSubprocess({"ip", "link", "set", host_veth_, "up"})));
  ASSERT_TRUE(ok(RunSubprocess({"ip", "-n", netns_, "addr", "add", pod_ip + "/30", "dev", "eth0"})));
  ASSERT_TRUE(ok(RunSubprocess({"ip", "-n", netns_, "link", "set", "eth0", "up"})));
  ASSERT_TRUE(ok(RunSubprocess({"ip", "-n", netns_, "link", "set", "lo", "up"})));
  // Only the DNS address goes through the node: nothing else can leave.
  ASSERT_TRUE(ok(RunSubprocess({"ip", "-n", netns_, "route", "add", address_ + "/32", "via", host_ip})));
  EXPECT_EQ(Dig("web.default.svc.cluster.local", "A", /*in_netns=*/true), ip);

  ASSERT_EQ(server_->Kubectl({"delete", "service", "web"}).exit_code, 0);
  std::string status;
  for (int i = 0; i < 100 && status != "NXDOMAIN"; ++i) {
    status = DigStatus("web.default.svc.cluster.local");
    if (status != "NXDOMAIN") std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(status, "NXDOMAIN");
}

TEST_F(ClusterDnsTest, GracefulStopRemovesTheLink) {
  server_->process().Signal(SIGTERM);
  ASSERT_TRUE(server_->process().Wait(30s).has_value());
  auto link = RunSubprocess({"ip", "link", "show", link_});
  ASSERT_TRUE(link.ok());
  EXPECT_NE(link->exit_code, 0) << "link " << link_ << " still there:\n" << link->stdout_text;
}

}  // namespace
}  // namespace kelpie
