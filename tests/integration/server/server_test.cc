// Starts the real `kelpie server` in a temp data dir on a free port and
// drives it with the real kubectl and with raw TLS clients.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/files.h"
#include "common/http/http_client.h"
#include "common/subprocess.h"
#include "common/tls/certificates.h"
#include "orchestrator/client/kubeconfig.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using namespace std::chrono_literals;

class KelpieServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = testing::FreeTcpPort();
    kubeconfig_ = dir_.File("data/kubeconfig.yaml");
    StartServer();
  }

  void StartServer() {
    auto server =
        testing::KelpieServer::Start(dir_.File("data"), port_, dir_.File("server.log"), {"--register-node=true"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  absl::StatusOr<std::unique_ptr<http::HttpClient>> AdminClient() { return server_->AdminClient(); }
  std::string Log() { return server_->Log(); }
  SubprocessResult Kubectl(std::vector<std::string> args, const std::string& kubeconfig = "") {
    return server_->Kubectl(args, kubeconfig);
  }

  testing::TempDir dir_;
  int port_ = 0;
  std::string kubeconfig_;
  std::unique_ptr<testing::KelpieServer> server_;
};

TEST_F(KelpieServerTest, KubectlVersionShowsServerVersion) {
  auto r = Kubectl({"version", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("\"serverVersion\""), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("+kelpie."), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("\"minor\": \"32\""), std::string::npos) << r.stdout_text;
}

TEST_F(KelpieServerTest, KubeconfigIsPrivateAndPkiIsReusedOnRestart) {
  struct stat st;
  ASSERT_EQ(::stat(kubeconfig_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string ca_before = *ReadFileToString(dir_.File("data/pki/ca.crt"));
  std::string kubeconfig_before = *ReadFileToString(kubeconfig_);

  server_->process().Signal(SIGTERM);
  auto status = server_->process().Wait(30s);
  ASSERT_TRUE(status.has_value()) << "server did not stop on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << Log();

  StartServer();
  EXPECT_EQ(*ReadFileToString(dir_.File("data/pki/ca.crt")), ca_before);
  EXPECT_EQ(*ReadFileToString(kubeconfig_), kubeconfig_before);
  auto r = Kubectl({"version"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
}

TEST_F(KelpieServerTest, SigintStopsCleanly) {
  server_->process().Signal(SIGINT);
  auto status = server_->process().Wait(30s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << Log();
  EXPECT_NE(Log().find("stopped"), std::string::npos);
}

TEST_F(KelpieServerTest, HealthEndpointsAnswer) {
  auto client = AdminClient();
  ASSERT_TRUE(client.ok());
  for (const char* path : {"/healthz", "/livez", "/readyz"}) {
    auto r = (*client)->Do({.method = "GET", .target = path});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_EQ(r->body, "ok") << path;
  }
  auto verbose = (*client)->Do({.method = "GET", .target = "/readyz?verbose"});
  EXPECT_NE(verbose->body.find("[+]ping ok"), std::string::npos) << verbose->body;
  EXPECT_NE(verbose->body.find("[+]store ok"), std::string::npos) << verbose->body;
  auto missing = (*client)->Do({.method = "GET", .target = "/no/such/path"});
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(missing->body.find("\"kind\":\"Status\""), std::string::npos);
}

TEST_F(KelpieServerTest, PlainHttpIsRefused) {
  // A plain-HTTP client on the TLS port gets kube-apiserver's 400 answer
  // and nothing else.
  auto r = RunSubprocess({"curl", "-sS", "-i", "--max-time", "10",
                          "http://127.0.0.1:" + std::to_string(port_) + "/version"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(r->stdout_text.find("400 Bad Request"), std::string::npos) << r->stdout_text;
  EXPECT_NE(r->stdout_text.find("Client sent an HTTP request to an HTTPS server."),
            std::string::npos);
  EXPECT_EQ(r->stdout_text.find("gitVersion"), std::string::npos);
}

TEST_F(KelpieServerTest, ClientCertificateFromForeignCaIsRefused) {
  auto foreign_ca = tls::CreateCertificateAuthority("foreign", std::chrono::hours(24));
  ASSERT_TRUE(foreign_ca.ok());
  tls::CertificateRequest req;
  req.common_name = "intruder";
  req.organizations = {"system:masters"};
  req.client_auth = true;
  auto intruder = tls::IssueCertificate(*foreign_ca, req);
  ASSERT_TRUE(intruder.ok());
  auto kc = client::LoadKubeconfig(kubeconfig_);
  ASSERT_TRUE(kc.ok());
  kc->client_certificate_pem = intruder->certificate_pem;
  kc->client_key_pem = intruder->private_key_pem;
  std::string bad = dir_.File("intruder.kubeconfig");
  ASSERT_TRUE(client::WriteKubeconfig(bad, *kc, 0600).ok());
  auto r = Kubectl({"version", "--request-timeout=10s"}, bad);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.stdout_text.find("Server Version"), std::string::npos) << r.stdout_text;
}

TEST_F(KelpieServerTest, ServerFromForeignCaIsRejectedByKubectl) {
  auto kc = client::LoadKubeconfig(kubeconfig_);
  ASSERT_TRUE(kc.ok());
  kc->ca_certificate_pem =
      tls::CreateCertificateAuthority("foreign", std::chrono::hours(24))->certificate_pem;
  std::string bad = dir_.File("foreign-ca.kubeconfig");
  ASSERT_TRUE(client::WriteKubeconfig(bad, *kc, 0600).ok());
  auto r = Kubectl({"version", "--request-timeout=10s"}, bad);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.stderr_text.find("certificate"), std::string::npos) << r.stderr_text;
}

TEST(KelpieServerFlagsTest, BadFlagsAreClearErrors) {
  testing::TempDir dir;
  auto r = RunSubprocess({testing::KelpieBinary(), "server", "--data-dir", dir.File("d"),
                          "--service-cidr", "10.43.0.1/16"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_NE(r->stderr_text.find("did you mean 10.43.0.0/16"), std::string::npos) << r->stderr_text;

  ASSERT_TRUE(WriteFileAtomically(dir.File("c.yaml"), "secure-port: 1\nno-such: x\n", 0600).ok());
  SubprocessOptions quick;
  quick.timeout = 20s;  // a config error must stop it at once, never start a server
  r = RunSubprocess({testing::KelpieBinary(), "server", "--data-dir", dir.File("d"), "--config",
                     dir.File("c.yaml")},
                    quick);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->timed_out);
  EXPECT_NE(r->exit_code, 0);
  EXPECT_NE(r->stderr_text.find(":2:1: unknown setting \"no-such\""), std::string::npos)
      << r->stderr_text;
}

}  // namespace
}  // namespace kelpie

namespace kelpie {
namespace {

TEST_F(KelpieServerTest, AgentTracksServerReadinessAndStopsOnSigterm) {
  ChildProcess::Options o;
  o.stdout_path = dir_.File("agent.log");
  auto agent = ChildProcess::Start({testing::KelpieBinary(), "agent", "--kubeconfig", kubeconfig_,
                                    "--health-interval-seconds", "1", "--data-dir", dir_.File("agent"),
                                    "--node-name", "agent-node", "--node-labels", "zone=a,team=blue",
                                    "--node-lease-duration-seconds", "8", "--service-routing=false", "--dns=false", "--network-observability=false"},
                                   o);
  ASSERT_TRUE(agent.ok()) << agent.status();
  std::string log;
  for (int i = 0; i < 200 && log.find("is ready") == std::string::npos; ++i) {
    std::this_thread::sleep_for(50ms);
    log = ReadFileToString(dir_.File("agent.log")).value_or("");
  }
  EXPECT_NE(log.find("is ready"), std::string::npos) << log;

  // The agent registered its node, Ready with its labels, and keeps a Lease.
  auto client = server_->AdminClient();
  ASSERT_TRUE(client.ok());
  nlohmann::json node, lease;
  for (int i = 0; i < 200; ++i) {
    auto n = (*client)->Do({"GET", "/api/v1/nodes/agent-node", {}, ""});
    auto l = (*client)->Do({"GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/agent-node", {}, ""});
    if (n.ok() && n->status == 200 && l.ok() && l->status == 200) {
      node = nlohmann::json::parse(n->body);
      lease = nlohmann::json::parse(l->body);
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(node.is_object()) << log;
  EXPECT_EQ(node["metadata"]["labels"].value("zone", ""), "a");
  EXPECT_EQ(node["metadata"]["labels"].value("kubernetes.io/hostname", ""), "agent-node");
  bool ready = false;
  for (const auto& c : node["status"]["conditions"]) ready = ready || (c["type"] == "Ready" && c["status"] == "True");
  EXPECT_TRUE(ready) << node.dump();
  EXPECT_NE(node["status"]["capacity"].value("cpu", ""), "");
  EXPECT_EQ(lease["spec"].value("holderIdentity", ""), "agent-node");
  EXPECT_EQ(lease["spec"].value("leaseDurationSeconds", 0), 8);
  // The server's own node is registered too.
  auto r = server_->Kubectl({"get", "nodes", "-o", "name"});
  EXPECT_NE(r.stdout_text.find("node/agent-node"), std::string::npos) << r.stdout_text;
  EXPECT_GE(std::count(r.stdout_text.begin(), r.stdout_text.end(), '\n'), 2) << r.stdout_text;
  // The server going away is noticed and reported.
  server_->process().Signal(SIGTERM);
  ASSERT_TRUE(server_->process().Wait(30s).has_value());
  for (int i = 0; i < 100 && log.find("is not ready") == std::string::npos; ++i) {
    std::this_thread::sleep_for(50ms);
    log = ReadFileToString(dir_.File("agent.log")).value_or("");
  }
  EXPECT_NE(log.find("is not ready"), std::string::npos) << log;
  agent->Signal(SIGTERM);
  auto status = agent->Wait(30s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << log;
}

TEST(KelpieAgentFlagsTest, UnreadableKubeconfigIsAClearError) {
  auto r = RunSubprocess({testing::KelpieBinary(), "agent", "--kubeconfig", "/nonexistent/kubeconfig"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_NE(r->stderr_text.find("/nonexistent/kubeconfig"), std::string::npos) << r->stderr_text;
}

}  // namespace
}  // namespace kelpie
