// Server-side apply with the real kubectl against a real `kelpie server`:
// `apply --server-side` creating and changing objects, conflicts as kubectl
// prints them, `--force-conflicts`, two field managers, dry runs, and
// managedFields shown by `get --show-managed-fields`.
#include <gtest/gtest.h>

#include <iostream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/http/http_client.h"
#include "common/subprocess.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using nlohmann::json;

class ServerSideApplyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    auto s = testing::KelpieServer::Start(dir_->File("data"), testing::FreeTcpPort(), dir_->File("server.log"));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr && ::testing::UnitTest::GetInstance()->failed_test_count() > 0) {
      std::string log = server_->Log();
      std::cerr << "server log (end):\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0) << "\n";
    }
    delete server_;
    delete dir_;
  }

  SubprocessResult Kubectl(std::vector<std::string> args, std::optional<std::string> stdin_text = std::nullopt) {
    return server_->Kubectl(args, "", stdin_text);
  }
  static std::string Output(const SubprocessResult& r) { return r.stdout_text + r.stderr_text; }

  json GetJson(const std::string& kind, const std::string& name, const std::string& ns = "default") {
    auto r = Kubectl({"get", kind, name, "-n", ns, "-o", "json", "--show-managed-fields"});
    EXPECT_TRUE(r.Succeeded()) << Output(r);
    json out = json::parse(r.stdout_text, nullptr, false);
    return out.is_discarded() ? json::object() : out;
  }
  static const json* Manager(const json& object, const std::string& manager, const std::string& operation) {
    if (!object.contains("metadata") || !object["metadata"].contains("managedFields")) return nullptr;
    for (const auto& e : object["metadata"]["managedFields"]) {
      if (e.value("manager", "") == manager && e.value("operation", "") == operation) return &e;
    }
    return nullptr;
  }

  static testing::TempDir* dir_;
  static testing::KelpieServer* server_;
};

testing::TempDir* ServerSideApplyTest::dir_ = nullptr;
testing::KelpieServer* ServerSideApplyTest::server_ = nullptr;

std::string DeploymentYaml(int replicas, const std::string& image) {
  std::string yaml = R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels:
    app: web
spec:
  replicas: REPLICAS
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: IMAGE
        ports:
        - containerPort: 80
)";
  return absl::StrReplaceAll(yaml, {{"REPLICAS", std::to_string(replicas)}, {"IMAGE", image}});
}

TEST_F(ServerSideApplyTest, ApplyCreatesThenChangesConflictsAndForces) {
  // Create.
  auto r = Kubectl({"apply", "--server-side", "-f", "-"}, DeploymentYaml(2, "nginx:1.25"));
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  EXPECT_EQ(r.stdout_text, "deployment.apps/web serverside-applied\n");
  json d = GetJson("deployment", "web");
  EXPECT_EQ(d["spec"]["replicas"], 2);
  const json* applier = Manager(d, "kubectl", "Apply");
  ASSERT_NE(applier, nullptr) << d["metadata"].dump(2);
  EXPECT_EQ((*applier)["apiVersion"], "apps/v1");
  EXPECT_EQ((*applier)["fieldsType"], "FieldsV1");
  EXPECT_TRUE((*applier)["fieldsV1"]["f:spec"].contains("f:replicas"));
  EXPECT_TRUE((*applier)["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"].contains(
      "k:{\"name\":\"web\"}"));

  // Change.
  r = Kubectl({"apply", "--server-side", "-f", "-"}, DeploymentYaml(3, "nginx:1.26"));
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  d = GetJson("deployment", "web");
  EXPECT_EQ(d["spec"]["replicas"], 3);
  EXPECT_EQ(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.26");

  // A dry run changes nothing.
  r = Kubectl({"apply", "--server-side", "--dry-run=server", "-f", "-"}, DeploymentYaml(9, "nginx:1.26"));
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  EXPECT_EQ(r.stdout_text, "deployment.apps/web serverside-applied (server dry run)\n");
  EXPECT_EQ(GetJson("deployment", "web")["spec"]["replicas"], 3);

  // Someone else takes .spec.replicas with a patch (an Update entry).
  r = Kubectl({"patch", "deployment", "web", "--type=merge", "-p", R"({"spec":{"replicas":5}})"});
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  d = GetJson("deployment", "web");
  const json* patcher = Manager(d, "kubectl-patch", "Update");
  ASSERT_NE(patcher, nullptr) << d["metadata"].dump(2);
  EXPECT_EQ((*patcher)["fieldsV1"], json::parse(R"({"f:spec":{"f:replicas":{}}})"));

  // Re-applying replicas: 3 is a conflict, as kubectl shows it for a real cluster.
  r = Kubectl({"apply", "--server-side", "-f", "-"}, DeploymentYaml(3, "nginx:1.26"));
  EXPECT_FALSE(r.Succeeded());
  EXPECT_NE(r.stderr_text.find("error: Apply failed with 1 conflict: conflict with \"kubectl-patch\" using "
                               "apps/v1: .spec.replicas"),
            std::string::npos)
      << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("--force-conflicts"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(GetJson("deployment", "web")["spec"]["replicas"], 5);

  // --force-conflicts takes the field back.
  r = Kubectl({"apply", "--server-side", "--force-conflicts", "-f", "-"}, DeploymentYaml(3, "nginx:1.26"));
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  d = GetJson("deployment", "web");
  EXPECT_EQ(d["spec"]["replicas"], 3);
  EXPECT_EQ(Manager(d, "kubectl-patch", "Update"), nullptr) << "the patcher owned nothing else";

  // Managed fields as kubectl prints them.
  r = Kubectl({"get", "deployment", "web", "-o", "yaml", "--show-managed-fields"});
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  for (const char* expected : {"managedFields:", "manager: kubectl\n", "operation: Apply", "fieldsType: FieldsV1",
                               "f:replicas: {}", "k:{\"name\":\"web\"}:"}) {
    EXPECT_NE(r.stdout_text.find(expected), std::string::npos) << expected << "\n" << r.stdout_text;
  }
  // ... and hidden without the flag, as kubectl does.
  r = Kubectl({"get", "deployment", "web", "-o", "yaml"});
  EXPECT_EQ(r.stdout_text.find("managedFields"), std::string::npos);
}

TEST_F(ServerSideApplyTest, TwoFieldManagersConflict) {
  constexpr char kRed[] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: colors\ndata:\n  color: red\n  a: one\n";
  constexpr char kBlue[] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: colors\ndata:\n  color: blue\n  b: two\n";
  auto r = Kubectl({"apply", "--server-side", "--field-manager=team-a", "-f", "-"}, std::string(kRed));
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  r = Kubectl({"apply", "--server-side", "--field-manager=team-b", "-f", "-"}, std::string(kBlue));
  EXPECT_FALSE(r.Succeeded());
  EXPECT_NE(r.stderr_text.find("Apply failed with 1 conflict: conflict with \"team-a\": .data.color"),
            std::string::npos)
      << r.stderr_text;

  // team-b forces: it owns color now, team-a keeps a.
  r = Kubectl({"apply", "--server-side", "--field-manager=team-b", "--force-conflicts", "-f", "-"},
              std::string(kBlue));
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  json cm = GetJson("configmap", "colors");
  EXPECT_EQ(cm["data"], json::parse(R"({"a":"one","b":"two","color":"blue"})"));
  ASSERT_NE(Manager(cm, "team-a", "Apply"), nullptr);
  EXPECT_EQ((*Manager(cm, "team-a", "Apply"))["fieldsV1"], json::parse(R"({"f:data":{"f:a":{}}})"));

  // team-a drops `a` and its old color: a goes, color (team-b's) stays.
  r = Kubectl({"apply", "--server-side", "--field-manager=team-a", "-f", "-"},
              std::string("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: colors\n  labels:\n    owner: alice\n"));
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  cm = GetJson("configmap", "colors");
  EXPECT_EQ(cm["data"], json::parse(R"({"b":"two","color":"blue"})"));
}

TEST_F(ServerSideApplyTest, OrdinaryWritesRecordUpdateEntries) {
  auto r = Kubectl({"create", "-f", "-"},
                   std::string("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: created\ndata:\n  k: v\n"));
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  json cm = GetJson("configmap", "created");
  const json* creator = Manager(cm, "kubectl-create", "Update");
  ASSERT_NE(creator, nullptr) << cm["metadata"].dump(2);
  EXPECT_EQ((*creator)["apiVersion"], "v1");
  EXPECT_EQ((*creator)["fieldsV1"]["f:data"]["f:k"], json::object());

  // Client-side apply records kubectl-client-side-apply.
  r = Kubectl({"apply", "-f", "-"},
              std::string("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: csa\ndata:\n  k: v\n"));
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  EXPECT_NE(Manager(GetJson("configmap", "csa"), "kubectl-client-side-apply", "Update"), nullptr);

  // Apply without a field manager is refused as kube-apiserver does.
  auto client = server_->AdminClient();
  ASSERT_TRUE(client.ok());
  http::ClientRequest req{"PATCH", "/api/v1/namespaces/default/configmaps/nomanager",
                          {{"Content-Type", "application/apply-patch+yaml"}},
                          "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nomanager\n"};
  auto resp = (*client)->Do(req);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->status, 422) << resp->body;
  json status = json::parse(resp->body);
  EXPECT_EQ(status["message"],
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch");
}

TEST_F(ServerSideApplyTest, ClientSideApplyMovesToServerSide) {
  // kubectl moves the fields of its client-side apply manager to its
  // server-side one (a JSON patch of managedFields guarded by a test of
  // resourceVersion); from then on, fields left out are removed.
  const std::string first = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: migrate\ndata:\n  k: v\n";
  auto r = Kubectl({"apply", "-f", "-"}, first);
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  ASSERT_NE(Manager(GetJson("configmap", "migrate"), "kubectl-client-side-apply", "Update"), nullptr);
  r = Kubectl({"apply", "--server-side", "-f", "-"}, first);
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  json cm = GetJson("configmap", "migrate");
  EXPECT_NE(Manager(cm, "kubectl", "Apply"), nullptr) << cm["metadata"].dump(2);
  EXPECT_EQ(Manager(cm, "kubectl-client-side-apply", "Update"), nullptr) << cm["metadata"].dump(2);

  r = Kubectl({"apply", "--server-side", "-f", "-"},
              std::string("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: migrate\ndata:\n  other: x\n"));
  ASSERT_TRUE(r.Succeeded()) << Output(r);
  EXPECT_EQ(GetJson("configmap", "migrate")["data"], json::parse(R"({"other":"x"})"));
}

}  // namespace
}  // namespace kelpie
