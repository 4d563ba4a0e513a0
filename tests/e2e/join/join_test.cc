// An agent joins a running `kelpie server` with the token the server wrote:
// it checks the server's CA against the token's hash, receives node
// credentials (system:node:<name>), registers its Node, and from then on may
// change only its own Node, Lease and pods. Wrong tokens are refused with a
// clear message. All traffic stays on loopback; the agents run without
// service routing and DNS (they would touch the host).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "common/subprocess.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class JoinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = testing::KelpieServer::Start(dir_.File("server"), testing::FreeTcpPort(), dir_.File("server.log"));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    auto token = ReadFileToString(dir_.File("server") + "/token");
    ASSERT_TRUE(token.ok()) << token.status();
    token_ = std::string(absl::StripAsciiWhitespace(*token));
    url_ = absl::StrCat("https://127.0.0.1:", server_->port());
  }

  // Runs `kelpie agent` joining with `token` until it exits or `wait_for`
  // shows up in its log; returns the log.
  std::string RunAgent(const std::string& token, const std::string& name, const std::string& wait_for,
                       std::optional<ChildProcess>* keep = nullptr, const std::string& log_name = "") {
    const std::string log_file = dir_.File((log_name.empty() ? name : log_name) + ".log");
    ChildProcess::Options o;
    o.stdout_path = log_file;
    o.kill_with_parent = true;
    auto agent = ChildProcess::Start({testing::KelpieBinary(), "agent", "--server", url_, "--token", token,
                                      "--data-dir", dir_.File(name), "--node-name", name,
                                      "--health-interval-seconds", "1",
                                      // Joining is under test, not the node's machinery: without these
                                      // the agent would create the default pod cgroup parent and CNI
                                      // bridge on the host and bind the kubelet port.
                                      "--service-routing=false", "--dns=false", "--network-observability=false",
                                      "--run-pods=false", "--kubelet-port=0"},
                                     o);
    EXPECT_TRUE(agent.ok()) << agent.status();
    if (!agent.ok()) return "";
    std::string log;
    for (int i = 0; i < 300; ++i) {
      log = ReadFileToString(log_file).value_or("");
      if (log.find(wait_for) != std::string::npos) break;
      if (agent->Wait(0ms).has_value()) break;
      std::this_thread::sleep_for(50ms);
    }
    if (keep != nullptr) keep->emplace(std::move(*agent));
    return ReadFileToString(log_file).value_or(log);
  }

  SubprocessResult AsNode(const std::string& name, const std::vector<std::string>& args) {
    return server_->Kubectl(args, dir_.File(name) + "/kubeconfig.yaml");
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::KelpieServer> server_;
  std::string token_, url_;
};

TEST_F(JoinTest, AgentJoinsWithTheTokenAndIsConfinedToItsOwnObjects) {
  ASSERT_EQ(token_.rfind("K10", 0), 0u) << token_;
  std::optional<ChildProcess> agent;
  std::string log = RunAgent(token_, "joined-node", "is ready", &agent);
  ASSERT_NE(log.find("received node credentials for joined-node"), std::string::npos) << log;
  ASSERT_NE(log.find("is ready"), std::string::npos) << log;

  // Registered under its own identity.
  SubprocessResult node;
  for (int i = 0; i < 100; ++i) {
    node = server_->Kubectl({"get", "node", "joined-node", "-o", "json"});
    if (node.exit_code == 0) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(node.exit_code, 0) << node.stderr_text;
  auto whoami = AsNode("joined-node", {"auth", "whoami", "-o", "json"});
  ASSERT_EQ(whoami.exit_code, 0) << whoami.stderr_text;
  json who = json::parse(whoami.stdout_text);
  EXPECT_EQ(who["status"]["userInfo"]["username"], "system:node:joined-node");
  EXPECT_NE(who["status"]["userInfo"]["groups"].dump().find("system:nodes"), std::string::npos);

  // Its own Node: allowed. Another node's: forbidden with the reason.
  EXPECT_EQ(AsNode("joined-node", {"label", "node", "joined-node", "zone=a"}).exit_code, 0);
  auto other = server_->Kubectl({"create", "-f", "-", "--validate=false"}, "",
                                R"({"apiVersion":"v1","kind":"Node","metadata":{"name":"other-node"}})");
  ASSERT_EQ(other.exit_code, 0) << other.stderr_text;
  auto denied = AsNode("joined-node", {"label", "node", "other-node", "zone=b"});
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_NE(denied.stderr_text.find("may only change its own Node object"), std::string::npos) << denied.stderr_text;

  // Pods: only those bound to it.
  auto pods = server_->Kubectl(
      {"create", "-f", "-", "--validate=false"}, "",
      R"({"apiVersion":"v1","kind":"List","items":[
           {"apiVersion":"v1","kind":"Pod","metadata":{"name":"mine"},"spec":{"nodeName":"joined-node","containers":[{"name":"c","image":"busybox"}]}},
           {"apiVersion":"v1","kind":"Pod","metadata":{"name":"theirs"},"spec":{"nodeName":"other-node","containers":[{"name":"c","image":"busybox"}]}}]})");
  ASSERT_EQ(pods.exit_code, 0) << pods.stderr_text;
  auto theirs = AsNode("joined-node", {"delete", "pod", "theirs", "--grace-period=0", "--force"});
  EXPECT_NE(theirs.exit_code, 0);
  EXPECT_NE(theirs.stderr_text.find("can only change pods bound to it"), std::string::npos) << theirs.stderr_text;
  EXPECT_EQ(AsNode("joined-node", {"delete", "pod", "mine", "--grace-period=0", "--force"}).exit_code, 0);
  auto create = server_->Kubectl(
      {"create", "-f", "-", "--validate=false"}, dir_.File("joined-node") + "/kubeconfig.yaml",
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"made-by-node"},"spec":{"nodeName":"joined-node","containers":[{"name":"c","image":"busybox"}]}})");
  EXPECT_NE(create.exit_code, 0);
  EXPECT_NE(create.stderr_text.find("may not create pods"), std::string::npos) << create.stderr_text;

  // A restarted agent keeps its credentials.
  agent->Signal(SIGTERM);
  ASSERT_TRUE(agent->Wait(30s).has_value());
  agent.reset();
  std::optional<ChildProcess> again;
  std::string log2 = RunAgent(token_, "joined-node", "is ready", &again, "joined-node-restarted");
  EXPECT_NE(log2.find("reusing node credentials for joined-node"), std::string::npos) << log2;
}

TEST_F(JoinTest, WrongTokensAreRefused) {
  // Right CA hash, wrong secret: the server refuses.
  std::string hash = token_.substr(3, 64);
  std::string log = RunAgent("K10" + hash + "::node:00000000000000000000000000000000", "bad-secret", "joining");
  EXPECT_NE(log.find("the server refused the token"), std::string::npos) << log;
  // Another CA's hash: the agent refuses the server before sending anything.
  std::string other_hash(64, 'a');
  log = RunAgent("K10" + other_hash + "::" + token_.substr(token_.find("::") + 2), "bad-hash", "joining");
  EXPECT_NE(log.find("is not the one the token pins"), std::string::npos) << log;
  // Not a token at all.
  log = RunAgent("hello", "not-a-token", "joining");
  EXPECT_NE(log.find("starts with K10"), std::string::npos) << log;
  // None of them became a node.
  auto nodes = server_->Kubectl({"get", "nodes", "-o", "name"});
  EXPECT_EQ(nodes.stdout_text.find("bad-"), std::string::npos) << nodes.stdout_text;
}

TEST_F(JoinTest, CaIsServedToAnyone) {
  auto r = RunSubprocess({"curl", "-sk", url_ + "/cacerts"});
  ASSERT_TRUE(r.ok());
  auto ca = ReadFileToString(dir_.File("server") + "/pki/ca.crt");
  ASSERT_TRUE(ca.ok());
  EXPECT_EQ(r->stdout_text, *ca);
}

}  // namespace
}  // namespace kelpie
