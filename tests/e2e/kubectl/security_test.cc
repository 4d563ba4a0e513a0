// Authentication, RBAC, tokens, audit, metrics and request limits against a
// real `kelpie server`, driven by the real kubectl where users would use it.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/http/http_client.h"
#include "common/subprocess.h"
#include "orchestrator/client/kubeconfig.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"
#include "tests/unit/store/etcd_process.h"

namespace kelpie {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr char kTokens[] =
    "jane-token,jane,uid-jane,\"team-a\"\n"
    "ed-token,ed,uid-ed\n";

// Writes a kubeconfig that authenticates with `token` (no client
// certificate) against `server`'s cluster.
std::string TokenKubeconfig(const testing::KelpieServer& server, const std::string& dir, const std::string& name,
                            const std::string& token) {
  auto admin = client::LoadKubeconfig(server.kubeconfig());
  EXPECT_TRUE(admin.ok());
  client::KubeconfigContents kc;
  kc.server = admin->server;
  kc.ca_certificate_pem = admin->ca_certificate_pem;
  kc.user_name = name;
  kc.token = token;
  std::string path = absl::StrCat(dir, "/", name, ".kubeconfig");
  EXPECT_TRUE(client::WriteKubeconfig(path, kc, 0600).ok());
  return path;
}

std::unique_ptr<http::HttpClient> TokenClient(const testing::KelpieServer& server, const std::string& token) {
  auto admin = client::LoadKubeconfig(server.kubeconfig());
  EXPECT_TRUE(admin.ok());
  client::KubeconfigContents kc = *admin;
  kc.client_certificate_pem.clear();
  kc.client_key_pem.clear();
  kc.token = token;
  auto c = http::HttpClient::Create(client::ClientOptionsFromKubeconfig(kc));
  EXPECT_TRUE(c.ok());
  return std::move(*c);
}

std::string ConfigMapYaml(const std::string& name) {
  return absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ", name,
                      "\n  namespace: default\ndata:\n  k: v\n");
}

std::string RoleBindingYaml(const std::string& name, const std::string& role, const std::string& subject_kind,
                            const std::string& subject) {
  std::string s = absl::StrCat("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: ", name,
                               "\n  namespace: default\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: "
                               "ClusterRole\n  name: ",
                               role, "\nsubjects:\n- kind: ", subject_kind, "\n  name: ", subject, "\n");
  if (subject_kind == "ServiceAccount") {
    s += "  namespace: default\n";
  } else {
    s += "  apiGroup: rbac.authorization.k8s.io\n";
  }
  return s;
}

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    ASSERT_TRUE(WriteFileAtomically(dir_->File("tokens.csv"), kTokens, 0600).ok());
    auto s = testing::KelpieServer::Start(dir_->File("data"), testing::FreeTcpPort(), dir_->File("server.log"),
                                          {"--token-auth-file", dir_->File("tokens.csv"), "--audit-log-path",
                                           dir_->File("audit.log")});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
    jane_ = TokenKubeconfig(*server_, dir_->path(), "jane", "jane-token");
    // jane may read what `view` grants in default, nothing more.
    auto r = Admin({"create", "-f", "-", "--validate=false"}, RoleBindingYaml("jane-view", "view", "User", "jane"));
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
    r = Admin({"create", "-f", "-", "--validate=false"}, ConfigMapYaml("seed"));
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
    // The authorizer follows the store through a watch: wait for it.
    ASSERT_TRUE(WaitUntil([] { return As(jane_, {"auth", "can-i", "list", "configmaps"}).stdout_text == "yes\n"; }));
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }

  static SubprocessResult Admin(const std::vector<std::string>& args,
                                const std::optional<std::string>& stdin_text = std::nullopt) {
    return server_->Kubectl(args, "", stdin_text);
  }
  static SubprocessResult As(const std::string& kubeconfig, const std::vector<std::string>& args,
                             const std::optional<std::string>& stdin_text = std::nullopt) {
    return server_->Kubectl(args, kubeconfig, stdin_text);
  }
  static bool WaitUntil(const std::function<bool()>& ok) {
    for (int i = 0; i < 100; ++i) {
      if (ok()) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  static testing::TempDir* dir_;
  static testing::KelpieServer* server_;
  static std::string jane_;
};

testing::TempDir* SecurityTest::dir_ = nullptr;
testing::KelpieServer* SecurityTest::server_ = nullptr;
std::string SecurityTest::jane_;

TEST_F(SecurityTest, ViewerReadsButIsForbiddenToWrite) {
  auto r = As(jane_, {"get", "configmaps", "-o", "name"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("configmap/seed"), std::string::npos);
  r = As(jane_, {"get", "configmap", "seed", "-o", "jsonpath={.data.k}"});
  EXPECT_EQ(r.stdout_text, "v");

  r = As(jane_, {"create", "-f", "-", "--validate=false"}, ConfigMapYaml("not-allowed"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.stderr_text.find("Error from server (Forbidden): error when creating \"STDIN\": configmaps is "
                               "forbidden: User \"jane\" cannot create resource \"configmaps\" in API group \"\" in "
                               "the namespace \"default\""),
            std::string::npos)
      << r.stderr_text;
  r = As(jane_, {"get", "pods", "-n", "kube-system"});
  EXPECT_NE(r.stderr_text.find("Error from server (Forbidden): pods is forbidden: User \"jane\" cannot list resource "
                               "\"pods\" in API group \"\" in the namespace \"kube-system\""),
            std::string::npos)
      << r.stderr_text;
  r = As(jane_, {"get", "secrets"});
  EXPECT_NE(r.stderr_text.find("secrets is forbidden"), std::string::npos) << r.stderr_text;
  r = As(jane_, {"delete", "configmap", "seed"});
  EXPECT_NE(r.stderr_text.find("configmaps \"seed\" is forbidden: User \"jane\" cannot delete resource"),
            std::string::npos)
      << r.stderr_text;
}

TEST_F(SecurityTest, BadOrMissingCredentialsAre401) {
  std::string bad = TokenKubeconfig(*server_, dir_->path(), "bad", "no-such-token");
  auto r = As(bad, {"get", "pods"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.stderr_text.find("error: You must be logged in to the server (Unauthorized)"), std::string::npos)
      << r.stderr_text;
  auto anonymous = TokenClient(*server_, "");
  auto resp = anonymous->Do({"GET", "/api/v1/namespaces", {}, ""});
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->status, 401);
  EXPECT_EQ(json::parse(resp->body)["reason"], "Unauthorized");
  resp = anonymous->Do({"GET", "/healthz", {}, ""});
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->status, 200);
  resp = anonymous->Do({"GET", "/version", {}, ""});
  EXPECT_EQ(resp->status, 200);
}

TEST_F(SecurityTest, AuthCanIAsAdminAsRestrictedUserAndImpersonated) {
  auto r = Admin({"auth", "can-i", "create", "pods"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_text, "yes\n");
  r = As(jane_, {"auth", "can-i", "create", "pods"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.stdout_text, "no\n");
  r = As(jane_, {"auth", "can-i", "watch", "deployments.apps"});
  EXPECT_EQ(r.stdout_text, "yes\n");
  r = As(jane_, {"auth", "can-i", "list", "pods", "-n", "kube-system"});
  EXPECT_EQ(r.stdout_text, "no\n");
  // The admin asks on jane's behalf (impersonation).
  r = Admin({"auth", "can-i", "create", "pods", "--as=jane"});
  EXPECT_EQ(r.stdout_text, "no\n");
  r = Admin({"auth", "can-i", "get", "configmaps", "--as=jane"});
  EXPECT_EQ(r.stdout_text, "yes\n");
  r = Admin({"auth", "can-i", "create", "pods", "--as=nobody", "--as-group=system:masters"});
  EXPECT_EQ(r.stdout_text, "yes\n");
  // jane may not impersonate anyone.
  r = As(jane_, {"auth", "can-i", "create", "pods", "--as=kelpie-admin"});
  EXPECT_NE(r.stderr_text.find("users \"kelpie-admin\" is forbidden: User \"jane\" cannot impersonate resource "
                               "\"users\" in API group \"\" at the cluster scope"),
            std::string::npos)
      << r.stderr_text;
  // Rules review.
  r = As(jane_, {"auth", "can-i", "--list"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("configmaps"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("selfsubjectaccessreviews.authorization.k8s.io"), std::string::npos);
  EXPECT_EQ(r.stdout_text.find("secrets"), std::string::npos) << r.stdout_text;
  r = As(jane_, {"auth", "whoami", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  json who = json::parse(r.stdout_text);
  EXPECT_EQ(who["status"]["userInfo"]["username"], "jane");
  EXPECT_EQ(who["status"]["userInfo"]["groups"], json({"team-a", "system:authenticated"}));
}

TEST_F(SecurityTest, ServiceAccountTokensFromKubectlCreateToken) {
  auto r = Admin({"create", "-f", "-", "--validate=false"},
                 "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: default\n---\n" +
                     RoleBindingYaml("default-edit", "edit", "ServiceAccount", "default"));
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  r = Admin({"create", "token", "default", "-n", "default"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  std::string token = std::string(absl::StripAsciiWhitespace(r.stdout_text));
  ASSERT_EQ(std::count(token.begin(), token.end(), '.'), 2) << token;
  std::string sa = TokenKubeconfig(*server_, dir_->path(), "sa", token);

  ASSERT_TRUE(WaitUntil([&] { return As(sa, {"auth", "can-i", "create", "configmaps"}).stdout_text == "yes\n"; }));
  r = As(sa, {"auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"});
  EXPECT_EQ(r.stdout_text, "system:serviceaccount:default:default") << r.stderr_text;
  r = As(sa, {"create", "-f", "-", "--validate=false"}, ConfigMapYaml("from-sa"));
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  r = As(sa, {"get", "secrets", "-n", "kube-system"});
  EXPECT_NE(r.stderr_text.find("User \"system:serviceaccount:default:default\" cannot list resource \"secrets\""),
            std::string::npos)
      << r.stderr_text;
  r = As(sa, {"create", "-f", "-", "--validate=false"},
         RoleBindingYaml("escalate", "cluster-admin", "ServiceAccount", "default"));
  EXPECT_NE(r.stderr_text.find("rolebindings.rbac.authorization.k8s.io is forbidden"), std::string::npos)
      << r.stderr_text;

  // TokenReview answers for the token.
  r = Admin({"create", "-o", "json", "-f", "-", "--validate=false"},
            json({{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "TokenReview"}, {"spec", {{"token", token}}}})
                .dump());
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  json review = json::parse(r.stdout_text);
  EXPECT_EQ(review["status"]["authenticated"], true);
  EXPECT_EQ(review["status"]["user"]["username"], "system:serviceaccount:default:default");

  // Lifetimes below ten minutes are refused, as on Kubernetes.
  r = Admin({"create", "token", "default", "--duration=5m"});
  EXPECT_NE(r.stderr_text.find("may not specify a duration less than 10 minutes"), std::string::npos) << r.stderr_text;
  r = Admin({"create", "token", "missing"});
  EXPECT_NE(r.stderr_text.find("serviceaccounts \"missing\" not found"), std::string::npos) << r.stderr_text;

  // A token dies with its service account.
  r = Admin({"delete", "serviceaccount", "default"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  r = As(sa, {"get", "configmaps"});
  EXPECT_NE(r.stderr_text.find("Unauthorized"), std::string::npos) << r.stderr_text;
}

TEST_F(SecurityTest, AuditLogRecordsMutatingRequests) {
  auto r = Admin({"create", "-f", "-", "--validate=false"}, ConfigMapYaml("audited"));
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  As(jane_, {"create", "-f", "-", "--validate=false"}, ConfigMapYaml("audited-denied"));
  Admin({"get", "configmaps"});  // reads are not audited
  json created, denied;
  bool read_audited = false;
  ASSERT_TRUE(WaitUntil([&] {
    auto text = ReadFileToString(dir_->File("audit.log"));
    if (!text.ok()) return false;
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      json e = json::parse(line, nullptr, false);
      if (e.is_discarded()) return false;  // every line is one JSON object
      if (e["verb"] == "list") read_audited = true;
      std::string name = e.contains("objectRef") ? e["objectRef"].value("name", "") : "";
      if (e.contains("objectRef") && e["objectRef"].value("resource", "") == "configmaps" && e["verb"] == "create") {
        if (e["responseStatus"]["code"] == 201 && e["user"]["username"] == "kelpie-admin") created = e;
        if (e["responseStatus"]["code"] == 403 && e["user"]["username"] == "jane") denied = e;
      }
    }
    return !created.is_null() && !denied.is_null();
  }));
  EXPECT_FALSE(read_audited);
  EXPECT_EQ(created["apiVersion"], "audit.k8s.io/v1");
  EXPECT_EQ(created["kind"], "Event");
  EXPECT_EQ(created["level"], "Metadata");
  EXPECT_EQ(created["stage"], "ResponseComplete");
  EXPECT_EQ(created["requestURI"].get<std::string>().rfind("/api/v1/namespaces/default/configmaps", 0), 0u);
  EXPECT_EQ(created["objectRef"]["namespace"], "default");
  EXPECT_EQ(created["sourceIPs"], json({"127.0.0.1"}));
  EXPECT_FALSE(created.value("auditID", "").empty());
  EXPECT_TRUE(created.contains("requestReceivedTimestamp"));
  EXPECT_TRUE(created.contains("stageTimestamp"));
  EXPECT_EQ(created["annotations"]["authorization.k8s.io/decision"], "allow");
  EXPECT_EQ(denied["responseStatus"]["reason"], "Forbidden");
  EXPECT_EQ(denied["annotations"]["authorization.k8s.io/decision"], "forbid");
}

TEST_F(SecurityTest, MetricsForAuthorizedUsersOnly) {
  ASSERT_EQ(Admin({"create", "-f", "-", "--validate=false"}, ConfigMapYaml("counted")).exit_code, 0);
  auto r = Admin({"get", "--raw", "/metrics"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string& m = r.stdout_text;
  EXPECT_NE(m.find("apiserver_request_total{code=\"201\",component=\"apiserver\",dry_run=\"\",group=\"\","
                   "resource=\"configmaps\",scope=\"namespace\",subresource=\"\",verb=\"POST\",version=\"v1\"}"),
            std::string::npos)
      << m.substr(0, 3000);
  EXPECT_NE(m.find("apiserver_request_total{code=\"403\""), std::string::npos);
  EXPECT_NE(m.find("apiserver_request_duration_seconds_bucket{component=\"apiserver\""), std::string::npos);
  EXPECT_NE(m.find("apiserver_current_inflight_requests{request_kind=\"readOnly\"}"), std::string::npos);
  EXPECT_NE(m.find("etcd_request_duration_seconds_bucket{operation=\"create\",type=\"configmaps\""), std::string::npos);
  EXPECT_NE(m.find("apiserver_audit_event_total"), std::string::npos);
  r = As(jane_, {"get", "--raw", "/metrics"});
  EXPECT_NE(r.stderr_text.find("Error from server (Forbidden): User \"jane\" cannot get path \"/metrics\""),
            std::string::npos)
      << r.stderr_text;
}

// Limits need requests that stay in flight: an etcd the test pauses
// (SIGSTOP) holds every store call of a request, deterministically.
class LimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto etcd = store::testing::EtcdProcess::Start(dir_.File("etcd"));
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = std::move(*etcd);
    ASSERT_TRUE(WriteFileAtomically(dir_.File("tokens.csv"), kTokens, 0600).ok());
    auto s = testing::KelpieServer::Start(
        dir_.File("data"), testing::FreeTcpPort(), dir_.File("server.log"),
        {"--store=etcd", "--etcd-endpoints", etcd_->endpoint(), "--token-auth-file", dir_.File("tokens.csv"),
         "--max-requests-inflight=1", "--max-mutating-requests-inflight=1", "--request-timeout=4s"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    auto r = server_->Kubectl({"create", "-f", "-", "--validate=false"}, "",
                              RoleBindingYaml("ed-edit", "edit", "User", "ed"));
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
    std::string ed = TokenKubeconfig(*server_, dir_.path(), "ed", "ed-token");
    for (int i = 0; i < 100 && server_->Kubectl({"auth", "can-i", "create", "configmaps"}, ed).stdout_text != "yes\n";
         ++i) {
      std::this_thread::sleep_for(100ms);
    }
  }
  void TearDown() override {
    if (etcd_) ::kill(etcd_->pid(), SIGCONT);
    server_.reset();
    etcd_.reset();
  }

  double Gauge(const std::string& series) {
    auto admin = server_->AdminClient();
    if (!admin.ok()) return -1;
    auto r = (*admin)->Do({"GET", "/metrics", {}, ""});
    if (!r.ok()) return -1;
    for (absl::string_view line : absl::StrSplit(r->body, '\n')) {
      if (absl::StartsWith(line, series + " ")) return std::stod(std::string(line.substr(series.size() + 1)));
    }
    return -1;
  }

  http::HttpResponse Post(http::HttpClient& c, const std::string& name) {
    json cm = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}}};
    auto r = c.Do({"POST", "/api/v1/namespaces/default/configmaps", {{"Content-Type", "application/json"}}, cm.dump()});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(http::HttpResponse{});
  }

  testing::TempDir dir_;
  std::unique_ptr<store::testing::EtcdProcess> etcd_;
  std::unique_ptr<testing::KelpieServer> server_;
};

TEST_F(LimitsTest, BeyondTheInflightLimitIs429WatchesDoNotCountAndStuckRequestsTimeOut) {
  auto ed = TokenClient(*server_, "ed-token");
  // A watch is long-running: with a read-only budget of 1, reads still pass.
  auto watcher = TokenClient(*server_, "ed-token");
  http::StreamCanceller cancel_watch;
  std::mutex watched_mu;
  std::string watched;
  std::thread watch([&] {
    (void)watcher->Stream({"GET", "/api/v1/namespaces/default/configmaps?watch=true", {}, ""},
                          [&](std::string_view data) {
                            std::lock_guard<std::mutex> lock(watched_mu);
                            watched.append(data);
                            return true;
                          },
                          cancel_watch);
  });
  // Threads end before the test returns, also when an assertion fails.
  std::thread first;
  struct Joiner {
    std::function<void()> fn;
    ~Joiner() { fn(); }
  } joiner{[&] {
    if (etcd_) ::kill(etcd_->pid(), SIGCONT);
    cancel_watch.Cancel();
    if (watch.joinable()) watch.join();
    if (first.joinable()) first.join();
  }};
  for (int i = 0; i < 100 && Gauge("apiserver_longrunning_requests{component=\"apiserver\",group=\"\",resource=\"configmaps\",scope=\"namespace\",subresource=\"\",verb=\"WATCH\",version=\"v1\"}") != 1; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  auto list = ed->Do({"GET", "/api/v1/namespaces/default/configmaps", {}, ""});
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->status, 200) << list->body;
  EXPECT_EQ(Post(*ed, "before-pause").status, 201);
  // The watch delivers the change to its (restricted) user.
  bool seen = false;
  for (int i = 0; i < 200 && !seen; ++i) {
    {
      std::lock_guard<std::mutex> lock(watched_mu);
      seen = watched.find("\"name\":\"before-pause\"") != std::string::npos;
    }
    if (!seen) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(seen) << "the watch did not deliver the create";

  // Pause etcd: a create now stays in flight until the request timeout.
  ASSERT_EQ(::kill(etcd_->pid(), SIGSTOP), 0);
  http::HttpResponse stuck;
  first = std::thread([&] { stuck = Post(*ed, "stuck"); });
  const std::string mutating = "apiserver_current_inflight_requests{request_kind=\"mutating\"}";
  bool held = false;
  for (int i = 0; i < 200 && !held; ++i) {
    held = Gauge(mutating) == 1;
    if (!held) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(held) << "the first create never went in flight";
  // Another connection (a client serves one request at a time).
  auto ed2 = TokenClient(*server_, "ed-token");
  http::HttpResponse refused = Post(*ed2, "refused");
  EXPECT_EQ(refused.status, 429) << refused.body;
  const std::string* retry_after = refused.Header("retry-after");
  ASSERT_NE(retry_after, nullptr);
  EXPECT_EQ(*retry_after, "1");
  json status = json::parse(refused.body, nullptr, false);
  EXPECT_EQ(status.value("reason", ""), "TooManyRequests");
  EXPECT_EQ(status["details"].value("retryAfterSeconds", 0), 1);

  first.join();
  EXPECT_EQ(stuck.status, 504) << stuck.body;
  EXPECT_EQ(json::parse(stuck.body, nullptr, false).value("reason", ""), "Timeout");

  ASSERT_EQ(::kill(etcd_->pid(), SIGCONT), 0);
  int code = 0;
  // An attempt that failed on the way back may still have been written.
  for (int i = 0; i < 100 && code != 201 && code != 409; ++i) {
    code = Post(*ed, "after-resume").status;
    if (code != 201 && code != 409) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(code == 201 || code == 409) << code;
  EXPECT_GE(Gauge("apiserver_dropped_requests_total{request_kind=\"mutating\"}"), 1);
}

}  // namespace
}  // namespace kelpie
