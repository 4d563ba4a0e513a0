// Network observability end to end on this node: NetworkObservability on a
// test pod cgroup parent (this process lives in its pod<uid> folder), real
// traffic between two network namespaces, then the shipped binary's
// `kelpie observe` reading the flows back by pod, verdict and service, and a
// real Prometheus (Debian's `prometheus`) scraping the endpoint over HTTPS.
// Needs root.
#include <errno.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/subprocess.h"
#include "dataplane/kernel_filesystems.h"
#include "exporters/observability/network_observability.h"
#include "tests/integration/observability/flow_test_env.h"
#include "tests/integration/service_routing/service_routing_env.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using namespace observability_testing;

constexpr uint16_t kServerPort = 8080;
constexpr const char* kPodUid = "6c1f0a52-e2e0-4b1e-9a7e-000000000001";

// This process in <parent>/pod<uid> for the test's lifetime.
class PodCgroupScope {
 public:
  explicit PodCgroupScope(const std::string& parent) : path_(parent + "/pod" + kPodUid) {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("0::", 0) == 0) original_ = dataplane::DetectCgroupV2Root().path + line.substr(3);
    }
    if (::mkdir(path_.c_str(), 0755) != 0) return;
    std::ofstream out(path_ + "/cgroup.procs");
    out << ::getpid();
    out.close();
    ok_ = static_cast<bool>(out);
  }
  ~PodCgroupScope() {
    if (!original_.empty()) {
      std::ofstream out(original_ + "/cgroup.procs");
      out << ::getpid();
    }
    for (int i = 0; i < 50 && ::rmdir(path_.c_str()) != 0 && errno == EBUSY; ++i) ::usleep(20000);
  }
  bool ok() const { return ok_; }

 private:
  std::string path_, original_;
  bool ok_ = false;
};

std::vector<nlohmann::json> JsonLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    out.push_back(nlohmann::json::parse(std::string(line)));
  }
  return out;
}

class NetworkObservabilityE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KELPIE_REQUIRE_PRIVILEGES();
    std::string base = absl::StrCat("kobe", ::getpid() % 100000);
    auto parent = service_routing_testing::TestCgroup::Create(base + "-pods");
    ASSERT_TRUE(parent.ok()) << parent.status();
    parent_ = std::move(*parent);
    pod_scope_ = std::make_unique<PodCgroupScope>(parent_->path());
    ASSERT_TRUE(pod_scope_->ok());
    auto pods = PodPair::Create(base, "10.213.9");
    ASSERT_TRUE(pods.ok()) << pods.status();
    pods_ = std::move(*pods);

    observability::NetworkObservabilityOptions o;
    o.node_name = "test-node";
    o.pod_cgroup_parent = parent_->path();
    o.endpoint.certificate_dir = tmp_.File("observability");
    auto started = observability::NetworkObservability::Start(o, std::nullopt);
    ASSERT_TRUE(started.ok()) << started.status();
    obs_ = std::move(*started);
    // The API's view of the two pods and the service (informers are
    // covered by their own tests; here the cache is fed directly).
    auto& ids = obs_->identities();
    ids.UpsertPod({.uid = kPodUid, .namespace_name = "shop", .name = "client-1", .labels = {{"app", "client"}},
                   .node_name = "test-node", .ips = {pods_->client_ip()}});
    ids.UpsertPod({.uid = "server-uid", .namespace_name = "shop", .name = "web-1", .labels = {{"app", "web"}},
                   .node_name = "test-node", .ips = {pods_->server_ip()}});
    ids.UpsertService({.namespace_name = "shop", .name = "web", .cluster_ips = {"10.43.77.1"},
                       .selector = {{"app", "web"}}});
    obs_->ScanPodCgroups();
  }

  SubprocessResult Observe(std::vector<std::string> args) {
    std::vector<std::string> argv = {testing::KelpieBinary(), "observe", "--server",
                                     absl::StrCat("https://127.0.0.1:", obs_->port()), "--ca-file",
                                     obs_->ca_file()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = RunSubprocess(argv, {.timeout = std::chrono::seconds(20)});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : SubprocessResult{};
  }

  std::string Curl(const std::string& url, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {"curl", "-sS", "--max-time", "10"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(url);
    auto r = RunSubprocess(argv);
    EXPECT_TRUE(r.ok() && r->Succeeded()) << (r.ok() ? r->stderr_text : r.status().ToString());
    return r.ok() ? r->stdout_text : "";
  }

  // Members in teardown order (last first).
  testing::TempDir tmp_;
  std::unique_ptr<service_routing_testing::TestCgroup> parent_;
  std::unique_ptr<PodCgroupScope> pod_scope_;
  std::unique_ptr<PodPair> pods_;
  std::unique_ptr<observability::NetworkObservability> obs_;
};

TEST_F(NetworkObservabilityE2eTest, ObserveNamesPodsServiceVerdictsAndPrometheusScrapes) {
  auto server = SinkServer::Start(pods_->server_netns(), pods_->server_ip(), kServerPort, 4000);
  ASSERT_TRUE(server.ok()) << server.status();
  Exchange ok;
  Exchange dropped;
  ASSERT_TRUE(pods_->ClientNft("table ip kelpie_test {\n"
                               "  chain out { type filter hook output priority 0; tcp dport 9099 drop; }\n"
                               "}\n")
                  .ok());
  ASSERT_TRUE(RunInNetns(pods_->client_netns(), [&] {
                ok = TcpExchange(pods_->server_ip(), kServerPort, 6000);
                dropped = TcpConnectAttempt(pods_->server_ip(), 9099, 300);
              }).ok());
  ASSERT_EQ(ok.error, 0) << std::strerror(ok.error);

  // The close and drop events reach the observer (bounded wait).
  std::vector<nlohmann::json> flows;
  nlohmann::json close;
  for (int i = 0; i < 50 && close.is_null(); ++i) {
    SubprocessResult r = Observe({"--pod", "shop/client-1", "-o", "json"});
    ASSERT_TRUE(r.Succeeded()) << r.stderr_text;
    flows = JsonLines(r.stdout_text);
    for (const auto& f : flows) {
      if (f["event_type"] == "close" && f["source"].value("pod_name", "") == "client-1" &&
          f["l4"]["TCP"]["source_port"] == ok.local_port) {
        close = f;
      }
    }
    if (close.is_null()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(close.is_null()) << "no close flow of client-1 in:\n" << nlohmann::json(flows).dump(1);
  EXPECT_EQ(close["verdict"], "FORWARDED");
  EXPECT_EQ(close["destination"]["pod_name"], "web-1");
  EXPECT_EQ(close["destination"]["namespace"], "shop");
  EXPECT_EQ(close["destination_service"]["name"], "web");
  EXPECT_EQ(close["traffic_direction"], "EGRESS");
  uint64_t sent = close["bytes_sent"], packets = close["packets_sent"];
  EXPECT_GE(sent, 6000u);
  EXPECT_LE(sent, 6000u + 64 * packets);
  uint64_t received = close["bytes_received"];
  EXPECT_GE(received, 4000u);

  // --verdict DROPPED: only the nftables drop, with its reason.
  SubprocessResult drops = Observe({"--verdict", "DROPPED", "-o", "json"});
  ASSERT_TRUE(drops.Succeeded()) << drops.stderr_text;
  auto dropped_flows = JsonLines(drops.stdout_text);
  ASSERT_FALSE(dropped_flows.empty());
  for (const auto& f : dropped_flows) {
    EXPECT_EQ(f["verdict"], "DROPPED");
    EXPECT_EQ(f["l4"]["TCP"]["destination_port"], 9099);
    EXPECT_EQ(f["drop_reason_desc"], "NETFILTER_DROP");
    EXPECT_EQ(f["source"]["pod_name"], "client-1");
  }
  // Filters that match nothing, table output, and bad input.
  SubprocessResult none = Observe({"--namespace", "elsewhere", "-o", "json"});
  ASSERT_TRUE(none.Succeeded());
  EXPECT_EQ(none.stdout_text, "");
  SubprocessResult table = Observe({"--to-pod", "shop/web-1", "--port", "8080", "--service", "web", "--last", "1"});
  ASSERT_TRUE(table.Succeeded()) << table.stderr_text;
  EXPECT_NE(table.stdout_text.find("shop/web-1 (" + pods_->server_ip() + ":8080)"), std::string::npos)
      << table.stdout_text;
  EXPECT_EQ(std::count(table.stdout_text.begin(), table.stdout_text.end(), '\n'), 2);  // header + 1
  SubprocessResult bad = Observe({"--since", "yesterday"});
  EXPECT_FALSE(bad.Succeeded());
  EXPECT_NE(bad.stderr_text.find("neither a time"), std::string::npos) << bad.stderr_text;

  // promtool accepts the exposition.
  std::string url = absl::StrCat("https://127.0.0.1:", obs_->port(), "/metrics");
  std::string exposition = Curl(url, {"--cacert", obs_->ca_file()});
  ASSERT_NE(exposition.find("kelpie_flows_total"), std::string::npos);
  auto check = RunSubprocess({"promtool", "check", "metrics"}, {.stdin_text = exposition});
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->Succeeded()) << check->stdout_text << check->stderr_text;

  // A real Prometheus scrapes the endpoint; PromQL sees the series.
  int prom_port = testing::FreeTcpPort();
  std::ofstream(tmp_.File("prometheus.yml"))
      << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
      << "scrape_configs:\n  - job_name: kelpie-node\n    scheme: https\n"
      << "    tls_config:\n      ca_file: " << obs_->ca_file() << "\n"
      << "    static_configs:\n      - targets: ['127.0.0.1:" << obs_->port() << "']\n";
  auto prometheus = ChildProcess::Start(
      {"prometheus", "--config.file=" + tmp_.File("prometheus.yml"), "--storage.tsdb.path=" + tmp_.File("tsdb"),
       absl::StrCat("--web.listen-address=127.0.0.1:", prom_port)},
      {.env = {}, .stdout_path = tmp_.File("prometheus.log")});
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();
  // Prometheus may still be starting: a refused query is retried, not a failure.
  auto query = [&](const std::string& promql) {
    auto r = RunSubprocess({"curl", "-sS", "--max-time", "10", "--data-urlencode", "query=" + promql,
                            absl::StrCat("http://127.0.0.1:", prom_port, "/api/v1/query")});
    std::string body = r.ok() ? r->stdout_text : "";
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.contains("data")) return nlohmann::json::array();
    return j["data"]["result"];
  };
  nlohmann::json flows_series = nlohmann::json::array();
  for (int i = 0; i < 60 && flows_series.empty(); ++i) {  // bounded: 30 s
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    flows_series = query("kelpie_flows_total{namespace=\"shop\",pod=\"client-1\"} > 0");
  }
  ASSERT_FALSE(flows_series.empty()) << "Prometheus never saw kelpie_flows_total; log:\n"
                                     << ReadFileToString(tmp_.File("prometheus.log")).value_or("");
  EXPECT_FALSE(query("kelpie_drops_total{reason=\"NETFILTER_DROP\"} > 0").empty());
  EXPECT_FALSE(query("kelpie_tcp_connect_duration_seconds_count > 0").empty());
  EXPECT_FALSE(query("kelpie_service_connections_total{namespace=\"shop\",service=\"web\"} >= 1").empty());
  EXPECT_FALSE(query("up{job=\"kelpie-node\"} == 1").empty());
}

}  // namespace
}  // namespace kelpie
