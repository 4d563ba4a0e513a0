// Subresources and pod deletion semantics against a real `kelpie server`:
// pods/binding (what the scheduler writes), the scale subresource that
// `kubectl scale` drives, and graceful pod deletion.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/http/http_client.h"
#include "common/subprocess.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using nlohmann::json;

class SubresourcesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    // The tests bind pods themselves, as another scheduler would: the
    // server's own scheduler would race them for the pods' status.
    auto s = testing::KelpieServer::Start(dir_->File("data"), testing::FreeTcpPort(), dir_->File("server.log"),
                                          {"--scheduler=false"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }

  SubprocessResult Kubectl(std::vector<std::string> args) { return server_->Kubectl(args, "", std::nullopt); }

  http::HttpResponse Request(const std::string& method, const std::string& target, const std::string& body = "",
                             const std::string& content_type = "application/json") {
    auto client = server_->AdminClient();
    EXPECT_TRUE(client.ok());
    http::ClientRequest req{method, target, {{"Content-Type", content_type}}, body};
    auto r = (*client)->Do(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(http::HttpResponse{});
  }
  json RequestJson(const std::string& method, const std::string& target, const std::string& body = "",
                   const std::string& content_type = "application/json", int* code = nullptr) {
    auto r = Request(method, target, body, content_type);
    if (code != nullptr) *code = r.status;
    return json::parse(r.body, nullptr, false);
  }

  void CreatePod(const std::string& name, const std::string& node = "") {
    json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}}},
                {"spec", {{"containers", json::array({{{"name", "app"}, {"image", "busybox"}}})}}}};
    if (!node.empty()) pod["spec"]["nodeName"] = node;
    auto r = Request("POST", "/api/v1/namespaces/default/pods", pod.dump());
    ASSERT_EQ(r.status, 201) << r.body;
  }

  static testing::TempDir* dir_;
  static testing::KelpieServer* server_;
};

testing::TempDir* SubresourcesTest::dir_ = nullptr;
testing::KelpieServer* SubresourcesTest::server_ = nullptr;

TEST_F(SubresourcesTest, BindingAssignsOnceAndRecordsTheCondition) {
  CreatePod("bind-me");
  const std::string binding_path = "/api/v1/namespaces/default/pods/bind-me/binding";
  int code = 0;
  json status = RequestJson("POST", binding_path,
                            R"({"apiVersion":"v1","kind":"Binding","metadata":{"name":"bind-me",
                                "annotations":{"scheduler.example/decided-by":"test"}},
                                "target":{"apiVersion":"v1","kind":"Node","name":"node-a"}})",
                            "application/json", &code);
  EXPECT_EQ(code, 201) << status.dump();
  EXPECT_EQ(status.value("kind", ""), "Status");
  EXPECT_EQ(status.value("status", ""), "Success");

  json pod = RequestJson("GET", "/api/v1/namespaces/default/pods/bind-me");
  EXPECT_EQ(pod["spec"].value("nodeName", ""), "node-a");
  EXPECT_EQ(pod["metadata"]["annotations"].value("scheduler.example/decided-by", ""), "test");
  bool scheduled = false;
  for (const auto& c : pod["status"]["conditions"]) {
    scheduled = scheduled || (c["type"] == "PodScheduled" && c["status"] == "True");
  }
  EXPECT_TRUE(scheduled) << pod.dump();

  // A pod is bound once.
  json again = RequestJson("POST", binding_path, R"({"kind":"Binding","target":{"name":"node-b"}})",
                           "application/json", &code);
  EXPECT_EQ(code, 409) << again.dump();
  EXPECT_EQ(again.value("reason", ""), "Conflict");
  EXPECT_NE(again.value("message", "").find("already assigned to node \"node-a\""), std::string::npos)
      << again.dump();

  // Bad bindings.
  RequestJson("POST", binding_path, R"({"kind":"Binding","target":{}})", "application/json", &code);
  EXPECT_EQ(code, 422);
  RequestJson("POST", binding_path, R"({"kind":"Binding","metadata":{"name":"other"},"target":{"name":"n"}})",
              "application/json", &code);
  EXPECT_EQ(code, 400);
  RequestJson("POST", "/api/v1/namespaces/default/pods/missing/binding",
              R"({"kind":"Binding","target":{"name":"node-a"}})", "application/json", &code);
  EXPECT_EQ(code, 404);
  RequestJson("GET", binding_path, "", "application/json", &code);
  EXPECT_EQ(code, 405);
  // Only pods have a binding subresource.
  RequestJson("POST", "/api/v1/namespaces/default/configmaps/x/binding", R"({"target":{"name":"n"}})",
              "application/json", &code);
  EXPECT_EQ(code, 404);
}

TEST_F(SubresourcesTest, KubectlScaleUsesTheScaleSubresource) {
  json deployment = {
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata", {{"name", "web"}}},
      {"spec",
       {{"replicas", 1},
        {"selector", {{"matchLabels", {{"app", "web"}}},
                      {"matchExpressions", json::array({{{"key", "tier"}, {"operator", "In"},
                                                         {"values", json::array({"front", "edge"})}}})}}},
        {"template",
         {{"metadata", {{"labels", {{"app", "web"}, {"tier", "front"}}}}},
          {"spec", {{"containers", json::array({{{"name", "app"}, {"image", "busybox"}}})}}}}}}}};
  auto created = Request("POST", "/apis/apps/v1/namespaces/default/deployments", deployment.dump());
  ASSERT_EQ(created.status, 201) << created.body;

  auto r = Kubectl({"scale", "deployment/web", "--replicas=3"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("scaled"), std::string::npos) << r.stdout_text;

  json scale = RequestJson("GET", "/apis/apps/v1/namespaces/default/deployments/web/scale");
  EXPECT_EQ(scale.value("kind", ""), "Scale");
  EXPECT_EQ(scale.value("apiVersion", ""), "autoscaling/v1");
  EXPECT_EQ(scale["spec"].value("replicas", -1), 3);
  EXPECT_EQ(scale["status"].value("selector", ""), "app=web,tier in (edge,front)");
  json stored = RequestJson("GET", "/apis/apps/v1/namespaces/default/deployments/web");
  EXPECT_EQ(stored["spec"].value("replicas", -1), 3);
  EXPECT_EQ(stored["metadata"].value("generation", 0), 2);

  // kubectl reads it too.
  r = Kubectl({"get", "deployment", "web", "--subresource=scale", "-o", "jsonpath={.spec.replicas}"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "3");

  // PUT with a stale resourceVersion conflicts; negative replicas are invalid.
  int code = 0;
  json put = scale;
  put["spec"]["replicas"] = 5;
  put["metadata"]["resourceVersion"] = "1";
  RequestJson("PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", put.dump(), "application/json",
              &code);
  EXPECT_EQ(code, 409);
  json invalid = RequestJson("PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale",
                             R"({"spec":{"replicas":-1}})", "application/merge-patch+json", &code);
  EXPECT_EQ(code, 422) << invalid.dump();
  EXPECT_NE(invalid.value("message", "").find("spec.replicas"), std::string::npos) << invalid.dump();
  put["metadata"].erase("resourceVersion");
  json done = RequestJson("PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", put.dump(),
                          "application/json", &code);
  EXPECT_EQ(code, 200) << done.dump();
  EXPECT_EQ(done["spec"].value("replicas", -1), 5);

  // Discovery advertises it the way kubectl expects.
  json resources = RequestJson("GET", "/apis/apps/v1");
  bool found = false;
  for (const auto& res : resources["resources"]) {
    if (res["name"] == "deployments/scale") {
      found = true;
      EXPECT_EQ(res.value("group", ""), "autoscaling");
      EXPECT_EQ(res.value("kind", ""), "Scale");
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(SubresourcesTest, BoundPodsAreDeletedGracefully) {
  CreatePod("graceful", "node-a");
  int code = 0;
  json deleting = RequestJson("DELETE", "/api/v1/namespaces/default/pods/graceful", "", "application/json", &code);
  ASSERT_EQ(code, 200) << deleting.dump();
  EXPECT_TRUE(deleting["metadata"].contains("deletionTimestamp"));
  EXPECT_EQ(deleting["metadata"].value("deletionGracePeriodSeconds", -1), 30);

  // Still there for its kubelet, which may keep writing status.
  json pod = RequestJson("GET", "/api/v1/namespaces/default/pods/graceful", "", "application/json", &code);
  ASSERT_EQ(code, 200);
  RequestJson("PATCH", "/api/v1/namespaces/default/pods/graceful/status",
              R"({"status":{"phase":"Running"}})", "application/merge-patch+json", &code);
  EXPECT_EQ(code, 200);
  // A client cannot clear the deletion.
  RequestJson("PATCH", "/api/v1/namespaces/default/pods/graceful",
              R"({"metadata":{"deletionTimestamp":null,"deletionGracePeriodSeconds":null}})",
              "application/merge-patch+json", &code);
  EXPECT_EQ(code, 200);
  pod = RequestJson("GET", "/api/v1/namespaces/default/pods/graceful");
  EXPECT_TRUE(pod["metadata"].contains("deletionTimestamp"));
  EXPECT_EQ(pod["metadata"].value("deletionGracePeriodSeconds", -1), 30);

  // A second deletion may shorten the grace period...
  json shorter = RequestJson("DELETE", "/api/v1/namespaces/default/pods/graceful",
                             R"({"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":5})",
                             "application/json", &code);
  EXPECT_EQ(code, 200);
  EXPECT_EQ(shorter["metadata"].value("deletionGracePeriodSeconds", -1), 5);
  // ...and the kubelet's zero-grace deletion removes it.
  RequestJson("DELETE", "/api/v1/namespaces/default/pods/graceful?gracePeriodSeconds=0", "", "application/json",
              &code);
  EXPECT_EQ(code, 200);
  RequestJson("GET", "/api/v1/namespaces/default/pods/graceful", "", "application/json", &code);
  EXPECT_EQ(code, 404);

  // A pod no node runs has nothing to stop: deleted at once.
  CreatePod("unbound");
  RequestJson("DELETE", "/api/v1/namespaces/default/pods/unbound", "", "application/json", &code);
  EXPECT_EQ(code, 200);
  RequestJson("GET", "/api/v1/namespaces/default/pods/unbound", "", "application/json", &code);
  EXPECT_EQ(code, 404);

  // kubectl's --grace-period=0 --force deletes a bound pod at once.
  CreatePod("forced", "node-a");
  auto r = Kubectl({"delete", "pod", "forced", "--grace-period=0", "--force"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  RequestJson("GET", "/api/v1/namespaces/default/pods/forced", "", "application/json", &code);
  EXPECT_EQ(code, 404);

  CreatePod("bad-grace", "node-a");
  RequestJson("DELETE", "/api/v1/namespaces/default/pods/bad-grace", R"({"gracePeriodSeconds":"x"})",
              "application/json", &code);
  EXPECT_EQ(code, 400);
}

TEST_F(SubresourcesTest, EvictionDeletesGracefullyAsKubectlDrainAsks) {
  CreatePod("evict-me", "node-a");
  int code = 0;
  json status = RequestJson("POST", "/api/v1/namespaces/default/pods/evict-me/eviction",
                            R"({"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"evict-me"},
                                "deleteOptions":{"gracePeriodSeconds":7}})",
                            "application/json", &code);
  EXPECT_EQ(code, 201) << status.dump();
  EXPECT_EQ(status.value("status", ""), "Success");
  json pod = RequestJson("GET", "/api/v1/namespaces/default/pods/evict-me");
  EXPECT_EQ(pod["metadata"].value("deletionGracePeriodSeconds", -1), 7) << pod.dump();

  RequestJson("POST", "/api/v1/namespaces/default/pods/missing/eviction",
              R"({"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"missing"}})", "application/json",
              &code);
  EXPECT_EQ(code, 404);

  // kubectl drain evicts what runs on a node (it cordons the Node first).
  json node = {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", "node-b"}}}};
  ASSERT_EQ(Request("POST", "/api/v1/nodes", node.dump()).status, 201);
  CreatePod("drained", "node-b");
  auto r = Kubectl({"drain", "node-b", "--force", "--grace-period=0", "--timeout=30s"});
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("evicted"), std::string::npos) << r.stdout_text;
  RequestJson("GET", "/api/v1/namespaces/default/pods/drained", "", "application/json", &code);
  EXPECT_EQ(code, 404);
  json cordoned = RequestJson("GET", "/api/v1/nodes/node-b");
  EXPECT_TRUE(cordoned["spec"].value("unschedulable", false)) << cordoned.dump();
}

}  // namespace
}  // namespace kelpie
