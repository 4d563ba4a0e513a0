// The resource API through the real kubectl and through raw HTTPS requests
// against a real `kelpie server`.
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/files.h"
#include "common/http/http_client.h"
#include "common/subprocess.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class ResourceApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    auto s = testing::KelpieServer::Start(dir_->File("data"), testing::FreeTcpPort(), dir_->File("server.log"));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }

  SubprocessResult Kubectl(std::vector<std::string> args, std::optional<std::string> stdin_text = std::nullopt) {
    return server_->Kubectl(args, "", stdin_text);
  }
  http::HttpResponse Request(const std::string& method, const std::string& target, const std::string& body = "",
                             const std::string& content_type = "application/json") {
    auto client = server_->AdminClient();
    EXPECT_TRUE(client.ok());
    http::ClientRequest req{method, target, {{"Content-Type", content_type}}, body};
    auto r = (*client)->Do(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(http::HttpResponse{});
  }

  static testing::TempDir* dir_;
  static testing::KelpieServer* server_;
};

testing::TempDir* ResourceApiTest::dir_ = nullptr;
testing::KelpieServer* ResourceApiTest::server_ = nullptr;

constexpr char kManifest[] = R"(apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels:
    app: shop
data:
  color: blue
---
apiVersion: v1
kind: Secret
metadata:
  name: token
  namespace: shop
type: Opaque
stringData:
  key: s3cr3t
)";

TEST_F(ResourceApiTest, KubectlCreateGetLabelPatchDelete) {
  auto r = Kubectl({"create", "--validate=false", "-f", "-"}, std::string(kManifest));
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("configmap/settings created"), std::string::npos) << r.stdout_text;

  r = Kubectl({"get", "namespaces"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  for (const char* ns : {"default", "kube-system", "kube-public", "kube-node-lease", "shop"}) {
    EXPECT_NE(r.stdout_text.find(ns), std::string::npos) << ns;
  }
  r = Kubectl({"get", "configmap", "settings", "-n", "shop", "-o", "jsonpath={.data.color}"});
  EXPECT_EQ(r.stdout_text, "blue") << r.stderr_text;

  r = Kubectl({"label", "configmap", "settings", "-n", "shop", "tier=web"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  r = Kubectl({"get", "cm", "-n", "shop", "-l", "tier=web,app in (shop)", "-o", "name"});
  EXPECT_EQ(r.stdout_text, "configmap/settings\n") << r.stderr_text;
  r = Kubectl({"get", "cm", "-n", "shop", "-l", "tier!=web", "-o", "name"});
  EXPECT_EQ(r.stdout_text, "") << r.stderr_text;

  r = Kubectl({"annotate", "configmap", "settings", "-n", "shop", "owner=team-a"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  r = Kubectl({"patch", "configmap", "settings", "-n", "shop", "--type=merge", "-p", R"({"data":{"size":"L"}})"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  r = Kubectl({"patch", "configmap", "settings", "-n", "shop", "--type=json", "-p",
               R"([{"op":"replace","path":"/data/color","value":"red"}])"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  r = Kubectl({"patch", "configmap", "settings", "-n", "shop", "-p", R"({"data":{"shape":"round"}})"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;  // strategic merge patch (kubectl's default)
  r = Kubectl({"get", "configmap", "settings", "-n", "shop", "-o", "json"});
  json cm = json::parse(r.stdout_text);
  EXPECT_EQ(cm["data"], (json{{"color", "red"}, {"size", "L"}, {"shape", "round"}}));
  EXPECT_EQ(cm["metadata"]["annotations"]["owner"], "team-a");
  EXPECT_EQ(cm["metadata"]["uid"].get<std::string>().size(), 36u);

  r = Kubectl({"get", "secret", "token", "-n", "shop", "-o", "jsonpath={.type}"});
  EXPECT_EQ(r.stdout_text, "Opaque");

  r = Kubectl({"delete", "configmap", "settings", "-n", "shop"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  r = Kubectl({"get", "configmap", "settings", "-n", "shop"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.stderr_text.find("configmaps \"settings\" not found"), std::string::npos) << r.stderr_text;
}

TEST_F(ResourceApiTest, KubectlDiscoveryAndApiResources) {
  auto r = Kubectl({"api-resources"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  for (const char* res : {"deployments", "replicasets", "daemonsets", "statefulsets", "jobs", "cronjobs",
                          "endpointslices", "leases", "networkpolicies", "clusterroles", "priorityclasses"}) {
    EXPECT_NE(r.stdout_text.find(res), std::string::npos) << res;
  }
  r = Kubectl({"api-versions"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("apps/v1"), std::string::npos);
  EXPECT_NE(r.stdout_text.find("rbac.authorization.k8s.io/v1"), std::string::npos);
}

TEST_F(ResourceApiTest, KubectlWatchSeesChanges) {
  Request("POST", "/api/v1/namespaces", R"({"metadata":{"name":"watched"}})");
  ChildProcess::Options o;
  o.stdout_path = dir_->File("watch.out");
  auto watch = ChildProcess::Start({"kubectl", "--kubeconfig", server_->kubeconfig(), "get", "configmaps", "-n",
                                    "watched", "--watch", "-o", "name"},
                                   o);
  ASSERT_TRUE(watch.ok());
  std::this_thread::sleep_for(1s);
  auto resp = Request("POST", "/api/v1/namespaces/watched/configmaps",
                      R"({"metadata":{"name":"seen-by-watch"},"data":{"a":"1"}})");
  EXPECT_EQ(resp.status, 201) << resp.body;
  std::string out;
  for (int i = 0; i < 100 && out.find("seen-by-watch") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
    out = ReadFileToString(dir_->File("watch.out")).value_or("");
  }
  EXPECT_NE(out.find("configmap/seen-by-watch"), std::string::npos) << out;
}

TEST_F(ResourceApiTest, ConflictsAndGenerateName) {
  Request("POST", "/api/v1/namespaces", R"({"metadata":{"name":"cas"}})");
  auto created = Request("POST", "/api/v1/namespaces/cas/configmaps",
                         R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"gen-"}})");
  ASSERT_EQ(created.status, 201) << created.body;
  json obj = json::parse(created.body);
  std::string name = obj["metadata"]["name"];
  EXPECT_EQ(name.rfind("gen-", 0), 0u);
  EXPECT_EQ(name.size(), 9u);
  std::string rv = obj["metadata"]["resourceVersion"];

  obj["data"] = {{"v", "1"}};
  auto updated = Request("PUT", "/api/v1/namespaces/cas/configmaps/" + name, obj.dump());
  ASSERT_EQ(updated.status, 200) << updated.body;
  // The same stale resourceVersion again: 409 Conflict.
  obj["data"] = {{"v", "2"}};
  auto stale = Request("PUT", "/api/v1/namespaces/cas/configmaps/" + name, obj.dump());
  EXPECT_EQ(stale.status, 409) << stale.body;
  json status = json::parse(stale.body);
  EXPECT_EQ(status["reason"], "Conflict");
  EXPECT_EQ(status["kind"], "Status");

  auto dup = Request("POST", "/api/v1/namespaces/cas/configmaps", json({{"metadata", {{"name", name}}}}).dump());
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(json::parse(dup.body)["reason"], "AlreadyExists");
}

TEST_F(ResourceApiTest, PaginationIsConsistent) {
  Request("POST", "/api/v1/namespaces", R"({"metadata":{"name":"pages"}})");
  for (int i = 0; i < 25; ++i) {
    auto r = Request("POST", "/api/v1/namespaces/pages/configmaps",
                     json({{"metadata", {{"name", "cm-" + std::to_string(100 + i)}}}}).dump());
    ASSERT_EQ(r.status, 201) << r.body;
  }
  std::vector<std::string> names;
  std::string cont;
  std::string first_rv;
  for (int page = 0; page < 10; ++page) {
    std::string target = "/api/v1/namespaces/pages/configmaps?limit=10";
    if (!cont.empty()) target += "&continue=" + cont;
    auto r = Request("GET", target);
    ASSERT_EQ(r.status, 200) << r.body;
    json list = json::parse(r.body);
    EXPECT_EQ(list["kind"], "ConfigMapList");
    for (const auto& item : list["items"]) names.push_back(item["metadata"]["name"]);
    if (first_rv.empty()) first_rv = list["metadata"]["resourceVersion"];
    // A write between pages does not show up in this listing.
    if (page == 0) {
      Request("POST", "/api/v1/namespaces/pages/configmaps", R"({"metadata":{"name":"cm-000-late"}})");
    }
    cont = list["metadata"].value("continue", "");
    if (cont.empty()) break;
    EXPECT_EQ(list["metadata"]["resourceVersion"], first_rv);
  }
  ASSERT_EQ(names.size(), 25u);
  EXPECT_EQ(names.front(), "cm-100");
  EXPECT_EQ(names.back(), "cm-124");
}

TEST_F(ResourceApiTest, BadInputGetsTheRightStatus) {
  struct Case {
    std::string method, target, body, content_type;
    int code;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"POST", "/api/v1/namespaces/default/configmaps", "{not json", "application/json", 400, "BadRequest"},
      {"POST", "/api/v1/namespaces/default/configmaps", "[1,2]", "application/json", 400, "BadRequest"},
      {"POST", "/api/v1/namespaces/default/configmaps", "a: [", "application/yaml", 400, "BadRequest"},
      {"POST", "/api/v1/namespaces/default/configmaps", R"({"metadata":{"name":"x"}})", "text/html", 415,
       "UnsupportedMediaType"},
      {"POST", "/api/v1/namespaces/default/configmaps", R"({"metadata":{"name":"Bad_Name"}})", "application/json",
       422, "Invalid"},
      {"POST", "/api/v1/namespaces/default/configmaps", R"({"metadata":{}})", "application/json", 422, "Invalid"},
      {"POST", "/api/v1/namespaces/default/configmaps", R"({"kind":"Pod","metadata":{"name":"x"}})",
       "application/json", 400, "BadRequest"},
      {"POST", "/api/v1/namespaces/nowhere/configmaps", R"({"metadata":{"name":"x"}})", "application/json", 404,
       "NotFound"},
      {"POST", "/api/v1/namespaces/default/configmaps", R"({"metadata":{"name":"x","namespace":"other"}})",
       "application/json", 400, "BadRequest"},
      {"GET", "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(", "", "application/json", 400,
       "BadRequest"},
      {"GET", "/api/v1/namespaces/default/configmaps?fieldSelector=spec.bogus%3D1", "", "application/json", 400,
       "BadRequest"},
      {"GET", "/api/v1/namespaces/default/configmaps?limit=-1", "", "application/json", 400, "BadRequest"},
      {"GET", "/api/v1/namespaces/default/configmaps?continue=garbage", "", "application/json", 400, "BadRequest"},
      {"GET", "/api/v1/namespaces/default/widgets", "", "application/json", 404, "NotFound"},
      {"GET", "/apis/nothere.example.com/v1/things", "", "application/json", 404, "NotFound"},
      {"GET", "/api/v1/namespaces/default/configmaps/missing", "", "application/json", 404, "NotFound"},
      {"PATCH", "/api/v1/namespaces/default/configmaps/missing", "{}", "application/merge-patch+json", 404,
       "NotFound"},
      {"PATCH", "/api/v1/namespaces/default", "{}", "application/x-unknown", 415, "UnsupportedMediaType"},
      {"DELETE", "/api/v1/namespaces/default/configmaps/missing", "", "application/json", 404, "NotFound"},
      {"POST", "/api/v1/namespaces/default/configmaps", std::string(4 * 1024 * 1024, 'x'), "application/json", 413,
       "RequestEntityTooLarge"},
  };
  for (const auto& c : cases) {
    auto r = Request(c.method, c.target, c.body, c.content_type);
    EXPECT_EQ(r.status, c.code) << c.method << " " << c.target << " " << c.body.substr(0, 60) << "\n" << r.body;
    json status = json::parse(r.body, nullptr, false);
    ASSERT_FALSE(status.is_discarded()) << r.body;
    EXPECT_EQ(status["kind"], "Status") << r.body;
    EXPECT_EQ(status["reason"], c.reason) << c.method << " " << c.target << "\n" << r.body;
    EXPECT_EQ(status["code"], c.code);
  }
  // The server is still healthy after all of that.
  EXPECT_EQ(Request("GET", "/readyz").status, 200);
}

TEST_F(ResourceApiTest, AnonymousAndNonAdminAreRefused) {
  http::HttpClientOptions o;
  o.server = "https://127.0.0.1:" + std::to_string(server_->port());
  o.tls.ca_file = dir_->File("data/pki/ca.crt");
  auto anon = http::HttpClient::Create(o);
  ASSERT_TRUE(anon.ok());
  auto r = (*anon)->Do({.method = "GET", .target = "/api/v1/namespaces"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json::parse(r->body)["reason"], "Unauthorized");
  // Health stays public.
  r = (*anon)->Do({.method = "GET", .target = "/healthz"});
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace kelpie
