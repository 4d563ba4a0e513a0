// /openapi/v2 and /openapi/v3 against a real `kelpie server` with the real
// kubectl: apply and create validate by default (through the server's
// fieldValidation=Strict, which kubectl chooses after reading /openapi/v3),
// an unknown field is kubectl's strict decoding error, explain prints the
// schema's fields, and the documents are cached as kube-apiserver does.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/http/http_client.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using nlohmann::json;

class OpenApiTest : public ::testing::Test {
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
  http::HttpResponse Get(const std::string& target, http::HeaderList headers = {}) {
    auto client = server_->AdminClient();
    EXPECT_TRUE(client.ok());
    auto r = (*client)->Do({"GET", target, headers, ""});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(http::HttpResponse{});
  }
  static testing::TempDir* dir_;
  static testing::KelpieServer* server_;
};

testing::TempDir* OpenApiTest::dir_ = nullptr;
testing::KelpieServer* OpenApiTest::server_ = nullptr;

constexpr const char* kManifest = R"(apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  color: blue
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox
        ports:
        - containerPort: 80
)";

TEST_F(OpenApiTest, ApplyAndCreateValidateByDefault) {
  auto r = Kubectl({"apply", "-f", "-"}, std::string(kManifest));
  ASSERT_TRUE(r.Succeeded()) << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("configmap/settings created"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("deployment.apps/web created"), std::string::npos) << r.stdout_text;
  r = Kubectl({"apply", "-f", "-"}, std::string(kManifest));
  ASSERT_TRUE(r.Succeeded()) << r.stderr_text;
  r = Kubectl({"create", "-f", "-"},
              std::string("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s1\nstringData:\n  k: v\n"));
  ASSERT_TRUE(r.Succeeded()) << r.stderr_text;
}

TEST_F(OpenApiTest, UnknownFieldIsKubectlsStrictError) {
  const std::string bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ncolour: red\n";
  for (const char* verb : {"apply", "create"}) {
    auto r = Kubectl({verb, "-f", "-"}, bad);
    EXPECT_FALSE(r.Succeeded());
    EXPECT_NE(r.stderr_text.find("Error from server (BadRequest): error when creating \"STDIN\": ConfigMap in version "
                                 "\"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field "
                                 "\"colour\""),
              std::string::npos)
        << verb << ": " << r.stderr_text;
  }
  EXPECT_FALSE(Kubectl({"get", "configmap", "bad"}).Succeeded());
}

TEST_F(OpenApiTest, ExplainPrintsSchemaFields) {
  auto r = Kubectl({"explain", "pod.spec.containers"});
  ASSERT_TRUE(r.Succeeded()) << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("FIELD: containers <[]Container>"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("image\t<string>"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("name\t<string> -required-"), std::string::npos) << r.stdout_text;
  r = Kubectl({"explain", "deployment", "--recursive"});
  ASSERT_TRUE(r.Succeeded()) << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("GROUP:      apps"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("KIND:       Deployment"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("selector\t<LabelSelector> -required-"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("revisionHistoryLimit\t<integer>"), std::string::npos) << r.stdout_text;
}

TEST_F(OpenApiTest, DocumentsAreHashAddressedAndCached) {
  auto discovery = Get("/openapi/v3");
  ASSERT_EQ(discovery.status, 200);
  auto doc = json::parse(discovery.body);
  std::string url = doc["paths"]["apis/apps/v1"]["serverRelativeURL"];
  ASSERT_NE(url.find("?hash="), std::string::npos);
  auto gv = Get(url);
  ASSERT_EQ(gv.status, 200);
  ASSERT_NE(gv.Header("cache-control"), nullptr);
  EXPECT_EQ(*gv.Header("cache-control"), "public, immutable");
  ASSERT_NE(gv.Header("etag"), nullptr);
  EXPECT_EQ(*gv.Header("etag"), "\"" + url.substr(url.find("?hash=") + 6) + "\"");
  auto spec = json::parse(gv.body);
  EXPECT_TRUE(spec["components"]["schemas"].contains("io.k8s.api.apps.v1.Deployment"));
  EXPECT_EQ(Get(url, {{"If-None-Match", *gv.Header("etag")}}).status, 304);
  auto moved = Get("/openapi/v3/apis/apps/v1?hash=0123");
  EXPECT_EQ(moved.status, 301);
  auto v2 = Get("/openapi/v2", {{"Accept", "application/json"}});
  ASSERT_EQ(v2.status, 200);
  EXPECT_EQ(json::parse(v2.body)["swagger"], "2.0");
}

}  // namespace
}  // namespace kelpie
