// kube-state-metrics families served by a real `kelpie server`: its
// controller manager runs a Deployment whose pods the fake nodes (Node
// objects without kubelets, tests/testing/fake_nodes.h) bind and report
// Running; a real Prometheus (Debian's `prometheus`) scrapes the API
// server's /metrics with a bearer token, and PromQL sees the Deployment,
// its pods and the nodes as the Kubernetes dashboards query them.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/subprocess.h"
#include "orchestrator/client/rest_client.h"
#include "tests/testing/fake_nodes.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr char kToken[] = "scrape-token-0123456789";

class StateMetricsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The fake nodes bind the pods, so the server's scheduler stays off.
    std::ofstream(dir_.File("tokens.csv")) << kToken << ",prometheus,prometheus-uid,\"system:masters\"\n";
    auto s = testing::KelpieServer::Start(dir_.File("data"), testing::FreeTcpPort(), dir_.File("server.log"),
                                          {"--scheduler=false", "--token-auth-file", dir_.File("tokens.csv")});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    auto c = client::RestClient::FromKubeconfig(server_->kubeconfig());
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
    fake_ = std::make_unique<testing::FakeNodes>(*client_);
    ASSERT_TRUE(fake_->AddNode("node-a").ok());
    ASSERT_TRUE(fake_->Start().ok());
  }

  void TearDown() override {
    if (fake_) fake_->Stop();
  }

  // The body of an HTTP GET to Prometheus on loopback (curl), or "".
  std::string HttpGet(const std::string& url, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {"curl", "-sS", "--max-time", "5", url};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = RunSubprocess(argv, {});
    return r.ok() ? r->stdout_text : "";
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::KelpieServer> server_;
  std::unique_ptr<client::RestClient> client_;
  std::unique_ptr<testing::FakeNodes> fake_;
};

TEST_F(StateMetricsE2eTest, PrometheusSeesDeploymentPodsAndNodes) {
  json deployment = json::parse(R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "app", "image": "busybox",
                                                   "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}}}]}}}})");
  ASSERT_TRUE(client_->Create(client::resources::kDeployments, "default", deployment).ok());

  // The exposition through the API server passes promtool.
  auto admin = server_->AdminClient();
  ASSERT_TRUE(admin.ok()) << admin.status();
  std::string exposition;
  for (int i = 0; i < 100; ++i) {  // bounded: 20 s
    auto r = (*admin)->Do({"GET", "/metrics", {}, ""});
    ASSERT_TRUE(r.ok()) << r.status();
    exposition = r->body;
    if (exposition.find("kube_deployment_status_replicas_available{namespace=\"default\",deployment=\"web\"} 2") !=
        std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_NE(exposition.find("kube_node_info{node=\"node-a\""), std::string::npos) << exposition;
  auto check = RunSubprocess({"promtool", "check", "metrics"}, {.stdin_text = exposition});
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->Succeeded()) << check->stdout_text << check->stderr_text;

  // A real Prometheus scrapes the API server as it scrapes kube-apiserver.
  const int prom_port = testing::FreeTcpPort();
  std::ofstream(dir_.File("prometheus.yml"))
      << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
      << "scrape_configs:\n  - job_name: kelpie-server\n    scheme: https\n"
      << "    authorization:\n      credentials: " << kToken << "\n"
      << "    tls_config:\n      ca_file: " << dir_.File("data") << "/pki/ca.crt\n"
      << "    static_configs:\n      - targets: ['127.0.0.1:" << server_->port() << "']\n";
  ChildProcess::Options po;
  po.stdout_path = dir_.File("prometheus.log");
  po.kill_with_parent = true;
  auto prometheus = ChildProcess::Start(
      {"prometheus", "--config.file=" + dir_.File("prometheus.yml"), "--storage.tsdb.path=" + dir_.File("tsdb"),
       absl::StrCat("--web.listen-address=127.0.0.1:", prom_port)},
      po);
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();
  auto query = [&](const std::string& promql) {
    auto j = json::parse(HttpGet(absl::StrCat("http://127.0.0.1:", prom_port, "/api/v1/query"),
                                 {"--data-urlencode", "query=" + promql}),
                         nullptr, false);
    if (j.is_discarded() || !j.contains("data")) return json::array();
    return j["data"]["result"];
  };
  json available = json::array();
  for (int i = 0; i < 60 && available.empty(); ++i) {  // bounded: 30 s
    std::this_thread::sleep_for(500ms);
    available = query("kube_deployment_status_replicas_available{namespace=\"default\",deployment=\"web\"} == 2");
  }
  ASSERT_FALSE(available.empty()) << "Prometheus never saw the deployment available; log:\n"
                                  << ReadFileToString(dir_.File("prometheus.log")).value_or("");
  EXPECT_FALSE(query("kube_deployment_spec_replicas{deployment=\"web\"} == 2").empty());
  auto running = query("count(kube_pod_status_phase{namespace=\"default\",phase=\"Running\"} == 1)");
  ASSERT_EQ(running.size(), 1u) << running.dump();
  EXPECT_EQ(running[0]["value"][1], "2") << running.dump();
  EXPECT_EQ(query("kube_pod_owner{namespace=\"default\",owner_kind=\"ReplicaSet\",owner_is_controller=\"true\"}")
                .size(),
            2u);
  auto cpu = query(
      "sum(kube_pod_container_resource_requests{namespace=\"default\",resource=\"cpu\",unit=\"core\"})");
  ASSERT_EQ(cpu.size(), 1u) << cpu.dump();
  EXPECT_EQ(cpu[0]["value"][1], "0.2") << cpu.dump();
  EXPECT_FALSE(query("kube_node_status_condition{node=\"node-a\",condition=\"Ready\",status=\"true\"} == 1").empty());
  EXPECT_FALSE(query("kube_node_status_allocatable{node=\"node-a\",resource=\"cpu\",unit=\"core\"} > 0").empty());

  // Deleting the Deployment takes its series away at the next scrapes.
  client::DeleteOptions foreground;
  foreground.propagation_policy = "Foreground";
  ASSERT_TRUE(client_->Delete(client::resources::kDeployments, "default", "web", foreground).ok());
  json gone = json::array({1});
  for (int i = 0; i < 60 && !gone.empty(); ++i) {  // bounded: 30 s
    std::this_thread::sleep_for(500ms);
    gone = query("kube_deployment_spec_replicas{deployment=\"web\"}");
  }
  EXPECT_TRUE(gone.empty()) << gone.dump();
}

}  // namespace
}  // namespace kelpie
