// Protobuf request bodies against a real `kelpie server` with the real
// kubectl v1.32: its typed generators (`kubectl create namespace`,
// `create configmap`, `create deployment`, ... ) send
// application/vnd.kubernetes.protobuf; each creates the object a JSON
// client would have, and `kubectl get` shows its fields. `kubectl run` and
// `kubectl expose` build their objects the same way (they send JSON). Raw
// requests check the errors: 415 for kinds without a schema and unmodelled
// fields, 400 for malformed bytes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/http/http_client.h"
#include "orchestrator/api/protobuf/protobuf_codec.h"
#include "orchestrator/api/protobuf/protobuf_wire.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using nlohmann::json;

class ProtobufTest : public ::testing::Test {
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
  // Runs kubectl and expects success.
  std::string Ok(std::vector<std::string> args) {
    auto r = server_->Kubectl(args);
    EXPECT_EQ(r.exit_code, 0) << absl_join(args) << ": " << r.stderr_text;
    return r.stdout_text;
  }
  json Get(const std::string& what, const std::string& ns = "") {
    std::vector<std::string> args = {"get", what, "-o", "json"};
    if (!ns.empty()) args.insert(args.end(), {"-n", ns});
    auto r = server_->Kubectl(args);
    EXPECT_EQ(r.exit_code, 0) << what << ": " << r.stderr_text;
    json j = json::parse(r.stdout_text, nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }
  http::HttpResponse Post(const std::string& target, const std::string& body) {
    auto client = server_->AdminClient();
    EXPECT_TRUE(client.ok());
    auto r = (*client)->Do({"POST", target, {{"Content-Type", "application/vnd.kubernetes.protobuf"}}, body});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(http::HttpResponse{});
  }
  static std::string absl_join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += s + " ";
    return out;
  }
  static testing::TempDir* dir_;
  static testing::KelpieServer* server_;
};

testing::TempDir* ProtobufTest::dir_ = nullptr;
testing::KelpieServer* ProtobufTest::server_ = nullptr;

TEST_F(ProtobufTest, KubectlSendsProtobufForTypedGenerators) {
  auto r = server_->Kubectl({"create", "namespace", "verbose", "-v=8"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("Content-Type: application/vnd.kubernetes.protobuf"), std::string::npos)
      << r.stderr_text;
  EXPECT_EQ(Get("namespace/verbose")["status"]["phase"], "Active");
}

TEST_F(ProtobufTest, CoreGenerators) {
  EXPECT_NE(Ok({"create", "namespace", "team"}).find("namespace/team created"), std::string::npos);
  json ns = Get("namespace/team");
  EXPECT_EQ(ns["metadata"]["name"], "team");
  EXPECT_EQ(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "team");

  Ok({"create", "configmap", "settings", "-n", "team", "--from-literal=color=blue", "--from-literal=empty="});
  json cm = Get("configmap/settings", "team");
  EXPECT_EQ(cm["data"], json({{"color", "blue"}, {"empty", ""}}));

  Ok({"create", "secret", "generic", "creds", "-n", "team", "--from-literal=password=s3cr3t"});
  json secret = Get("secret/creds", "team");
  EXPECT_EQ(secret["data"]["password"], "czNjcjN0");  // base64 of s3cr3t
  Ok({"create", "secret", "docker-registry", "pull", "-n", "team", "--docker-server=registry.example",
      "--docker-username=u", "--docker-password=p"});
  EXPECT_EQ(Get("secret/pull", "team")["type"], "kubernetes.io/dockerconfigjson");

  Ok({"create", "serviceaccount", "robot", "-n", "team"});
  EXPECT_EQ(Get("serviceaccount/robot", "team")["metadata"]["name"], "robot");

  Ok({"create", "service", "clusterip", "api", "-n", "team", "--tcp=5678:8080"});
  json svc = Get("service/api", "team");
  EXPECT_EQ(svc["spec"]["type"], "ClusterIP");
  EXPECT_EQ(svc["spec"]["selector"]["app"], "api");
  ASSERT_EQ(svc["spec"]["ports"].size(), 1u);
  EXPECT_EQ(svc["spec"]["ports"][0]["name"], "5678-8080");
  EXPECT_EQ(svc["spec"]["ports"][0]["port"], 5678);
  EXPECT_EQ(svc["spec"]["ports"][0]["targetPort"], 8080);
  EXPECT_EQ(svc["spec"]["ports"][0]["protocol"], "TCP");
  EXPECT_FALSE(svc["spec"]["clusterIP"].get<std::string>().empty());

  Ok({"create", "service", "nodeport", "edge", "-n", "team", "--tcp=80:8080", "--node-port=30123"});
  json edge = Get("service/edge", "team");
  EXPECT_EQ(edge["spec"]["type"], "NodePort");
  EXPECT_EQ(edge["spec"]["ports"][0]["nodePort"], 30123);

  // -o yaml as a user reads it.
  std::string yaml = Ok({"get", "configmap", "settings", "-n", "team", "-o", "yaml"});
  EXPECT_NE(yaml.find("color: blue"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("empty: \"\""), std::string::npos) << yaml;
}

TEST_F(ProtobufTest, WorkloadGenerators) {
  Ok({"create", "deployment", "web", "--image=nginx:1.27", "--port=80", "--replicas=3"});
  json d = Get("deployment/web");
  EXPECT_EQ(d["spec"]["replicas"], 3);
  EXPECT_EQ(d["spec"]["selector"]["matchLabels"]["app"], "web");
  EXPECT_EQ(d["spec"]["template"]["metadata"]["labels"]["app"], "web");
  const json& c = d["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["name"], "nginx");
  EXPECT_EQ(c["image"], "nginx:1.27");
  EXPECT_EQ(c["ports"][0]["containerPort"], 80);
  // Go's zero values that protobuf carries are not stored.
  EXPECT_FALSE(d["metadata"].contains("generateName"));
  EXPECT_FALSE(c.contains("stdin"));
  EXPECT_FALSE(c.contains("workingDir"));

  // replicas 0 is a pointer's value and survives.
  Ok({"create", "deployment", "idle", "--image=busybox", "--replicas=0", "--", "sleep", "3600"});
  json idle = Get("deployment/idle");
  EXPECT_EQ(idle["spec"]["replicas"], 0);
  EXPECT_EQ(idle["spec"]["template"]["spec"]["containers"][0]["command"], json({"sleep", "3600"}));

  Ok({"create", "job", "once", "--image=busybox", "--", "echo", "hi"});
  json job = Get("job/once");
  EXPECT_EQ(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
  EXPECT_EQ(job["spec"]["template"]["spec"]["containers"][0]["command"], json({"echo", "hi"}));

  Ok({"create", "cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *", "--", "date"});
  json cron = Get("cronjob/tick");
  EXPECT_EQ(cron["spec"]["schedule"], "*/5 * * * *");
  EXPECT_EQ(cron["spec"]["jobTemplate"]["metadata"]["name"], "tick");
  EXPECT_EQ(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");

  // A job from the cron job carries its owner reference and annotation.
  Ok({"create", "job", "manual", "--from=cronjob/tick"});
  json manual = Get("job/manual");
  EXPECT_EQ(manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"], "manual");
  EXPECT_EQ(manual["metadata"]["ownerReferences"][0]["kind"], "CronJob");
  EXPECT_EQ(manual["metadata"]["ownerReferences"][0]["controller"], true);
  EXPECT_EQ(manual["metadata"]["ownerReferences"][0]["uid"], cron["metadata"]["uid"]);

  Ok({"run", "shell", "--image=busybox", "--labels=tier=debug", "--env=MODE=test", "--port=8080", "--", "sleep",
      "60"});
  json pod = Get("pod/shell");
  EXPECT_EQ(pod["metadata"]["labels"]["tier"], "debug");
  EXPECT_EQ(pod["spec"]["containers"][0]["env"][0], json({{"name", "MODE"}, {"value", "test"}}));
  EXPECT_EQ(pod["spec"]["containers"][0]["ports"][0]["containerPort"], 8080);

  Ok({"expose", "deployment", "web", "--port=8080", "--target-port=80"});
  json exposed = Get("service/web");
  EXPECT_EQ(exposed["spec"]["selector"]["app"], "web");
  EXPECT_EQ(exposed["spec"]["ports"][0]["port"], 8080);
  EXPECT_EQ(exposed["spec"]["ports"][0]["targetPort"], 80);

  Ok({"scale", "deployment", "web", "--replicas=1"});
  EXPECT_EQ(Get("deployment/web")["spec"]["replicas"], 1);
}

TEST_F(ProtobufTest, RbacAndSchedulingGenerators) {
  Ok({"create", "role", "reader", "--verb=get,list", "--resource=pods,deployments.apps"});
  json role = Get("role/reader");
  ASSERT_EQ(role["rules"].size(), 2u);
  EXPECT_EQ(role["rules"][0]["apiGroups"], json({""}));  // the core group, an empty string, is kept
  EXPECT_EQ(role["rules"][0]["resources"], json({"pods"}));
  EXPECT_EQ(role["rules"][0]["verbs"], json({"get", "list"}));
  EXPECT_EQ(role["rules"][1]["apiGroups"], json({"apps"}));

  Ok({"create", "rolebinding", "read-it", "--role=reader", "--user=jane", "--serviceaccount=default:robot"});
  json rb = Get("rolebinding/read-it");
  EXPECT_EQ(rb["roleRef"], json({{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", "reader"}}));
  ASSERT_EQ(rb["subjects"].size(), 2u);
  EXPECT_EQ(rb["subjects"][1], json({{"kind", "ServiceAccount"}, {"name", "robot"}, {"namespace", "default"}}));

  Ok({"create", "clusterrole", "logs", "--verb=get", "--non-resource-url=/logs/*"});
  EXPECT_EQ(Get("clusterrole/logs")["rules"][0]["nonResourceURLs"], json({"/logs/*"}));
  Ok({"create", "clusterrole", "combined", "--aggregation-rule=team=ops"});
  EXPECT_EQ(Get("clusterrole/combined")["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"]["team"], "ops");

  Ok({"create", "clusterrolebinding", "ops-logs", "--clusterrole=logs", "--group=ops"});
  json crb = Get("clusterrolebinding/ops-logs");
  EXPECT_EQ(crb["subjects"][0]["kind"], "Group");
  EXPECT_EQ(crb["subjects"][0]["name"], "ops");

  // The binding works: jane may now read pods in default.
  auto can = server_->Kubectl({"auth", "can-i", "list", "pods", "--as=jane"});
  EXPECT_EQ(can.stdout_text, "yes\n") << can.stderr_text;

  Ok({"create", "priorityclass", "high", "--value=1000", "--description=important", "--preemption-policy=Never"});
  json pc = Get("priorityclass/high");
  EXPECT_EQ(pc["value"], 1000);
  EXPECT_EQ(pc["description"], "important");
  EXPECT_EQ(pc["preemptionPolicy"], "Never");
  EXPECT_FALSE(pc.contains("globalDefault"));
  Ok({"create", "priorityclass", "zero", "--value=0"});
  EXPECT_EQ(Get("priorityclass/zero")["value"], 0);  // required: kept even when zero
}

TEST_F(ProtobufTest, ErrorsAreStatusObjects) {
  using api::protobuf::ProtobufWriter;
  using api::protobuf::SerializeEnvelope;
  ProtobufWriter meta;
  meta.BytesField(1, "ep");
  ProtobufWriter endpoints;
  endpoints.BytesField(1, meta.data());
  auto r = Post("/api/v1/namespaces/default/endpoints", SerializeEnvelope({"v1", "Endpoints", endpoints.data(), "", ""}));
  EXPECT_EQ(r.status, 415) << r.body;
  json status = json::parse(r.body);
  EXPECT_EQ(status["reason"], "UnsupportedMediaType");
  EXPECT_NE(status["message"].get<std::string>().find("Endpoints (v1) has no protobuf schema"), std::string::npos)
      << r.body;

  // A field the schema does not model (PodSpec field 99), with a value.
  ProtobufWriter spec;
  spec.BytesField(99, "set");
  ProtobufWriter pod;
  pod.BytesField(1, meta.data());
  pod.BytesField(2, spec.data());
  r = Post("/api/v1/namespaces/default/pods", SerializeEnvelope({"v1", "Pod", pod.data(), "", ""}));
  EXPECT_EQ(r.status, 415) << r.body;
  EXPECT_NE(r.body.find("protobuf field 99 of core/v1.PodSpec (in spec)"), std::string::npos) << r.body;

  // Malformed bytes.
  r = Post("/api/v1/namespaces/default/configmaps", std::string("k8s\0\x0a\x7f", 6));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(json::parse(r.body)["reason"], "BadRequest");
  r = Post("/api/v1/namespaces/default/configmaps", "not protobuf");
  EXPECT_EQ(r.status, 400) << r.body;
  ProtobufWriter bad_name;
  bad_name.BytesField(1, "\xff\xfe");
  ProtobufWriter cm;
  cm.BytesField(1, bad_name.data());
  r = Post("/api/v1/namespaces/default/configmaps", SerializeEnvelope({"v1", "ConfigMap", cm.data(), "", ""}));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("not UTF-8"), std::string::npos) << r.body;

  // A well-formed body of another kind than the endpoint's.
  ProtobufWriter ns_meta;
  ns_meta.BytesField(1, "wrong-kind");
  ProtobufWriter ns;
  ns.BytesField(1, ns_meta.data());
  r = Post("/api/v1/namespaces/default/configmaps", SerializeEnvelope({"v1", "Namespace", ns.data(), "", ""}));
  EXPECT_EQ(r.status, 400) << r.body;
}

}  // namespace
}  // namespace kelpie
