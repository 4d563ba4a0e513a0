// Unit tests of what the pod worker derives from a pod spec: quantities,
// $(VAR) expansion, the environment (service links, envFrom, valueFrom),
// probe parsing and the atomic volume writer. No privileges needed.
#include <sys/stat.h>

#include <map>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/kubelet/container_env.h"
#include "orchestrator/kubelet/pod_volumes.h"
#include "orchestrator/kubelet/prober.h"
#include "tests/testing/test_env.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;

class FakePodApi : public PodApi {
 public:
  std::map<std::string, json> config_maps, secrets;
  json services = json::array();
  absl::StatusOr<json> GetConfigMap(const std::string&, const std::string& name) override {
    if (!config_maps.count(name)) return client::StatusFromHttp(404, "configmaps not found");
    return config_maps[name];
  }
  absl::StatusOr<json> GetSecret(const std::string&, const std::string& name) override {
    if (!secrets.count(name)) return client::StatusFromHttp(404, "secrets not found");
    return secrets[name];
  }
  absl::StatusOr<json> ListServices(const std::string&) override { return services; }
  absl::StatusOr<json> GetService(const std::string&, const std::string&) override {
    return client::StatusFromHttp(404, "services not found");
  }
  absl::StatusOr<json> RequestToken(const std::string&, const std::string&, const json&) override {
    return json{{"status", {{"token", "tok"}}}};
  }
  absl::Status PatchPodStatus(const std::string&, const std::string&, const json&) override {
    return absl::OkStatus();
  }
  absl::Status DeletePodNow(const std::string&, const std::string&, const std::string&) override {
    return absl::OkStatus();
  }
};

TEST(ExpandVarsTest, KubernetesSyntax) {
  auto lookup = [](const std::string& name) -> std::optional<std::string> {
    if (name == "A") return "1";
    return std::nullopt;
  };
  EXPECT_EQ(ExpandVars("x$(A)y", lookup), "x1y");
  EXPECT_EQ(ExpandVars("$(B) stays", lookup), "$(B) stays");
  EXPECT_EQ(ExpandVars("$$(A) escaped", lookup), "$(A) escaped");
  EXPECT_EQ(ExpandVars("$A $ $(", lookup), "$A $ $(");
}

json TestPod() {
  return json::parse(R"J({
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x", "tier": "web"}},
    "spec": {"nodeName": "n1", "serviceAccountName": "sa",
             "containers": [{"name": "c", "image": "busybox",
                             "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}]}})J");
}

TEST(ContainerEnvironmentTest, ServiceLinksEnvFromAndValueFrom) {
  FakePodApi api;
  api.services = json::parse(R"J([
    {"metadata": {"name": "redis-main"}, "spec": {"clusterIP": "10.43.0.5",
      "ports": [{"name": "db", "port": 6379, "protocol": "TCP"}]}},
    {"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}])J");
  api.config_maps["cm"] = json::parse(R"J({"data": {"A": "from-cm", "bad key": "x"}})J");
  api.secrets["s"] = json::parse(R"J({"data": {"pw": "aHVudGVyMg=="}})J");
  json pod = TestPod();
  json container = json::parse(R"J({"name": "c",
    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
    "envFrom": [{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "missing", "optional": true}}],
    "env": [{"name": "B", "value": "$(A)-$(REDIS_MAIN_SERVICE_HOST)"},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {"name": "A", "value": "overridden"}]})J");
  PodEnvContext ctx;
  ctx.pod_ip = "10.42.0.7";
  auto env = ContainerEnvironment(pod, container, ctx, api);
  ASSERT_TRUE(env.ok()) << env.status();
  std::map<std::string, std::string> m(env->begin(), env->end());
  EXPECT_EQ(m["A"], "overridden");
  EXPECT_EQ(m.count("bad key"), 0u);
  EXPECT_EQ(m["B"], "from-cm-10.43.0.5");
  EXPECT_EQ(m["IP"], "10.42.0.7");
  EXPECT_EQ(m["TIER"], "web");
  EXPECT_EQ(m["CPU"], "500");
  EXPECT_EQ(m["MEM"], "128");
  EXPECT_EQ(m["PW"], "hunter2");
  EXPECT_EQ(m["REDIS_MAIN_SERVICE_HOST"], "10.43.0.5");
  EXPECT_EQ(m["REDIS_MAIN_SERVICE_PORT"], "6379");
  EXPECT_EQ(m["REDIS_MAIN_SERVICE_PORT_DB"], "6379");
  EXPECT_EQ(m["REDIS_MAIN_PORT"], "tcp://10.43.0.5:6379");
  EXPECT_EQ(m["REDIS_MAIN_PORT_6379_TCP_ADDR"], "10.43.0.5");
  EXPECT_EQ(m.count("HEADLESS_SERVICE_HOST"), 0u);
  EXPECT_EQ(ExpandCommand({"echo", "$(PW)", "$(NOPE)"}, *env),
            (std::vector<std::string>{"echo", "hunter2", "$(NOPE)"}));

  json missing = json::parse(R"J({"name": "c", "env": [{"name": "X", "valueFrom":
      {"configMapKeyRef": {"name": "cm", "key": "nokey"}}}]})J");
  EXPECT_FALSE(ContainerEnvironment(pod, missing, ctx, api).ok());
  missing["env"][0]["valueFrom"]["configMapKeyRef"]["optional"] = true;
  EXPECT_TRUE(ContainerEnvironment(pod, missing, ctx, api).ok());
}

TEST(ProbeTest, ParsesDefaultsAndNamedPorts) {
  json container = json::parse(R"J({"ports": [{"name": "http", "containerPort": 8080}]})J");
  ProbeSpec p = ParseProbe(json::parse(R"J({"httpGet": {"path": "/healthz", "port": "http"}})J"), container);
  EXPECT_EQ(p.kind, ProbeSpec::Kind::kHttpGet);
  EXPECT_EQ(p.port, 8080);
  EXPECT_EQ(p.period_seconds, 10);
  EXPECT_EQ(p.timeout_seconds, 1);
  EXPECT_EQ(p.failure_threshold, 3);
  ProbeSpec e = ParseProbe(json::parse(R"J({"exec": {"command": ["true"]}, "periodSeconds": 2})J"), container);
  EXPECT_EQ(e.kind, ProbeSpec::Kind::kExec);
  EXPECT_EQ(e.period_seconds, 2);
  EXPECT_EQ(ParseProbe(json(), container).kind, ProbeSpec::Kind::kNone);
}

TEST(AtomicVolumeTest, SwapsDataAndRemovesVanishedKeys) {
  testing::TempDir dir;
  std::string vol = dir.File("vol");
  ASSERT_TRUE(WriteAtomicVolume(vol, {{"a", {"1", 0644}}, {"sub/b", {"2", 0400}}}).ok());
  EXPECT_EQ(*ReadFileToString(vol + "/a"), "1");
  EXPECT_EQ(*ReadFileToString(vol + "/sub/b"), "2");
  struct stat st;
  ASSERT_EQ(::stat((vol + "/sub/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0400u);
  char target[256] = {};
  ASSERT_GT(::readlink((vol + "/..data").c_str(), target, sizeof(target) - 1), 0);
  // Unchanged contents: no new generation.
  ASSERT_TRUE(WriteAtomicVolume(vol, {{"a", {"1", 0644}}, {"sub/b", {"2", 0400}}}).ok());
  char same[256] = {};
  ASSERT_GT(::readlink((vol + "/..data").c_str(), same, sizeof(same) - 1), 0);
  EXPECT_STREQ(target, same);
  ASSERT_TRUE(WriteAtomicVolume(vol, {{"a", {"3", 0644}}}).ok());
  EXPECT_EQ(*ReadFileToString(vol + "/a"), "3");
  EXPECT_FALSE(PathExists(vol + "/sub"));
  EXPECT_FALSE(PathExists(vol + "/" + target));
  EXPECT_FALSE(WriteAtomicVolume(vol, {{"../escape", {"x", 0644}}}).ok());
}

}  // namespace
}  // namespace kelpie::kubelet
