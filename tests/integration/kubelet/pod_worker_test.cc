// Root tests of the kubelet's pod lifecycle: a real `kelpie server`, the pod
// manager in-process with its own runc runtime (own bridge, pod CIDR,
// cgroup parent and state folder), real CNI plugins, the busybox image.
// Pods are bound by setting spec.nodeName at creation. Traffic goes only to
// the pod IPs of this test's pods.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/subprocess.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/kubelet/pod_manager.h"
#include "orchestrator/kubelet/pod_volumes.h"
#include "orchestrator/runtime/image/image_store.h"
#include "orchestrator/runtime/runc_pod_runtime.h"
#include "tests/testing/busybox_image.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;
using testing::TempDir;
namespace res = client::resources;

std::string MountInfo() {
  auto m = ReadFileToString("/proc/self/mountinfo");
  return m.ok() ? *m : "";
}

class PodWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KELPIE_REQUIRE_PRIVILEGES();
    std::random_device rd;
    int octet = static_cast<int>(rd() % 200) + 20;
    suffix_ = absl::StrCat(rd() % 100000);
    bridge_ = absl::StrCat("kp", suffix_);
    node_ = absl::StrCat("pw-node-", suffix_);
    auto server = testing::KelpieServer::Start(dir_.File("server"), testing::FreeTcpPort(), dir_.File("server.log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto http = server_->AdminClient();
    ASSERT_TRUE(http.ok()) << http.status();
    client_ = std::make_unique<client::RestClient>(std::move(*http));

    rt_options_.state_dir = dir_.File("state");
    rt_options_.log_dir = dir_.File("logs");
    rt_options_.shim_command = {testing::KelpieBinary(), "runtime-shim"};
    rt_options_.cgroup_parent = absl::StrCat("/kelpie-pw-", suffix_, ".slice");
    rt_options_.cni.bridge = bridge_;
    rt_options_.cni.network_name = absl::StrCat("kelpie-pw-", suffix_);
    rt_options_.cni.pod_cidr = absl::StrCat("10.42.", octet, ".0/24");
    auto images = image::ImageStore::Open(dir_.File("data"));
    ASSERT_TRUE(images.ok()) << images.status();
    images_ = std::move(*images);
    auto archive = testing::BuildBusyboxImage(dir_.path());
    ASSERT_TRUE(archive.ok()) << archive.status();
    ASSERT_TRUE(images_->Import(*archive).ok());
    auto rt = runtime::RuncPodRuntime::Create(rt_options_, *images_);
    ASSERT_TRUE(rt.ok()) << rt.status();
    runtime_ = std::move(*rt);

    options_.node_name = node_;
    options_.node_ip = "127.0.0.1";
    options_.pods_dir = dir_.File("pods");
    options_.node_cpu_millis = 2000;
    options_.node_memory_bytes = int64_t{4} << 30;
    options_.backoff_initial = std::chrono::seconds(2);
    options_.volume_refresh = std::chrono::seconds(1);
    StartManager();
  }

  void TearDown() override {
    if (manager_) manager_->Stop();
    manager_.reset();
    if (runtime_) {
      auto sandboxes = runtime_->ListPodSandboxes();
      if (sandboxes.ok()) {
        for (const auto& s : *sandboxes) EXPECT_TRUE(runtime_->RemovePodSandbox(s.id).ok());
      }
      (void)runtime_->cgroups().RemoveParentIfEmpty();
    }
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_.File("pods"), ec)) {
      EXPECT_TRUE(PodVolumes::Teardown(e.path().string()).ok());
    }
    if (!bridge_.empty()) (void)RunSubprocess({"ip", "link", "del", bridge_});
  }

  void StartManager() {
    manager_ = std::make_unique<PodManager>(options_, *client_, *runtime_, images_.get());
    manager_->Start();
    ASSERT_TRUE(manager_->WaitForSync(std::chrono::seconds(30)));
  }

  json Pod(const std::string& name, json containers, json extra_spec = json::object()) {
    json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}, {"namespace", "default"}, {"labels", {{"app", name}}}}},
                {"spec",
                 {{"nodeName", node_}, {"terminationGracePeriodSeconds", 2}, {"containers", std::move(containers)}}}};
    for (auto it = extra_spec.begin(); it != extra_spec.end(); ++it) pod["spec"][it.key()] = it.value();
    return pod;
  }

  static json Container(const std::string& name, const std::string& script, json extra = json::object()) {
    json c = {{"name", name}, {"image", "busybox"}, {"command", {"sh", "-c", script}}};
    for (auto it = extra.begin(); it != extra.end(); ++it) c[it.key()] = it.value();
    return c;
  }

  json Create(const json& pod) {
    auto created = client_->Create(res::kPods, "default", pod);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *created : json::object();
  }

  // Polls the pod until `pred` holds; fails with the last status otherwise.
  json WaitPod(const std::string& name, const std::function<bool(const json&)>& pred, int seconds = 90) {
    json last;
    for (int i = 0; i < seconds * 5; ++i) {
      auto pod = client_->Get(res::kPods, "default", name);
      if (pod.ok()) {
        last = *pod;
        if (pred(last)) return last;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ADD_FAILURE() << "pod " << name << " never reached the expected state; last: "
                  << (last.contains("status") ? last["status"].dump(2) : last.dump());
    return last;
  }

  static bool Phase(const json& pod, const std::string& phase) {
    return pod.contains("status") && pod["status"].value("phase", "") == phase;
  }
  static bool Condition(const json& pod, const std::string& type, const std::string& status) {
    if (!pod.contains("status")) return false;
    for (const auto& c : pod["status"].value("conditions", json::array())) {
      if (c.value("type", "") == type) return c.value("status", "") == status;
    }
    return false;
  }
  static json ContainerStatus(const json& pod, const std::string& name, const char* list = "containerStatuses") {
    if (!pod.contains("status")) return json::object();
    for (const auto& c : pod["status"].value(list, json::array())) {
      if (c.value("name", "") == name) return c;
    }
    return json::object();
  }
  static std::string ContainerId(const json& pod, const std::string& name) {
    std::string id = ContainerStatus(pod, name).value("containerID", "");
    return absl::StartsWith(id, "runc://") ? id.substr(7) : id;
  }

  runtime::ExecSyncResult Exec(const json& pod, const std::string& container, const std::string& script) {
    auto r = runtime_->ExecSync(ContainerId(pod, container), {"sh", "-c", script}, std::chrono::seconds(20));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : runtime::ExecSyncResult{};
  }

  std::string LogOf(const json& pod, const std::string& container, int attempt = 0) {
    auto log = ReadFileToString(absl::StrCat(rt_options_.log_dir, "/default_", pod["metadata"].value("name", ""), "_",
                                             pod["metadata"].value("uid", ""), "/", container, "/", attempt, ".log"));
    return log.ok() ? *log : "";
  }

  TempDir dir_;
  std::string suffix_, bridge_, node_;
  std::unique_ptr<testing::KelpieServer> server_;
  std::unique_ptr<client::RestClient> client_;
  runtime::RuncRuntimeOptions rt_options_;
  std::unique_ptr<image::ImageStore> images_;
  std::unique_ptr<runtime::RuncPodRuntime> runtime_;
  PodWorkerOptions options_;
  std::unique_ptr<PodManager> manager_;
};

TEST_F(PodWorkerTest, BusyboxRunsWithEnvDnsAndCriLog) {
  ASSERT_TRUE(client_->Create(res::kConfigMaps, "default",
                              {{"apiVersion", "v1"}, {"kind", "ConfigMap"},
                               {"metadata", {{"name", "cfg"}}}, {"data", {{"color", "blue"}, {"size", "L"}}}})
                  .ok());
  ASSERT_TRUE(client_->Create(res::kSecrets, "default",
                              {{"apiVersion", "v1"}, {"kind", "Secret"},
                               {"metadata", {{"name", "sec"}}}, {"data", {{"password", "aHVudGVyMg=="}}}})
                  .ok());
  json env = json::array({
      {{"name", "GREETING"}, {"value", "hello"}},
      {{"name", "POD_NAME"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}},
      {{"name", "MESSAGE"}, {"value", "$(GREETING) from $(POD_NAME) $$(GREETING) $(LATER)"}},
      {{"name", "LATER"}, {"value", "later"}},
      {{"name", "POD_IP"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "status.podIP"}}}}}},
      {{"name", "APP"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.labels['app']"}}}}}},
      {{"name", "MEM"}, {"valueFrom", {{"resourceFieldRef", {{"resource", "limits.memory"}, {"divisor", "1Mi"}}}}}},
      {{"name", "COLOR"}, {"valueFrom", {{"configMapKeyRef", {{"name", "cfg"}, {"key", "color"}}}}}},
      {{"name", "PASSWORD"}, {"valueFrom", {{"secretKeyRef", {{"name", "sec"}, {"key", "password"}}}}}},
  });
  json c = {{"name", "main"},
            {"image", "busybox"},
            {"command", {"sh", "-c"}},
            {"args", {"echo \"$MESSAGE|$APP|$MEM|$COLOR|$PASSWORD|$CFG_size\"; echo arg=$(GREETING); exec sleep 3600"}},
            {"env", env},
            {"envFrom", {{{"configMapRef", {{"name", "cfg"}}}, {"prefix", "CFG_"}}}},
            {"workingDir", "/tmp"},
            {"resources", {{"limits", {{"memory", "64Mi"}}}}}};
  json pod = Create(Pod("hello", json::array({c})));
  pod = WaitPod("hello", [](const json& p) { return Phase(p, "Running") && Condition(p, "Ready", "True"); });
  const json& st = pod["status"];
  EXPECT_TRUE(absl::StartsWith(st.value("podIP", ""), "10.42.")) << st.dump();
  EXPECT_EQ(st.value("hostIP", ""), "127.0.0.1");
  EXPECT_FALSE(st.value("startTime", "").empty());
  EXPECT_EQ(st.value("qosClass", ""), "Burstable");
  for (const char* type : {"PodScheduled", "Initialized", "ContainersReady", "Ready"}) {
    EXPECT_TRUE(Condition(pod, type, "True")) << type;
  }
  json cs = ContainerStatus(pod, "main");
  EXPECT_EQ(cs.value("restartCount", -1), 0);
  EXPECT_TRUE(cs["state"].contains("running"));
  EXPECT_TRUE(cs.value("started", false));

  // Output lands in the CRI log file.
  std::string log;
  for (int i = 0; i < 100 && !absl::StrContains(log, "arg=hello"); ++i) {
    log = LogOf(pod, "main");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(absl::StrContains(log, " stdout F hello from hello $(GREETING) $(LATER)|hello|64|blue|hunter2|L\n")) << log;
  EXPECT_TRUE(absl::StrContains(log, " stdout F arg=hello\n")) << log;

  auto pwd = Exec(pod, "main", "pwd; echo $POD_IP");
  EXPECT_EQ(pwd.stdout_text, absl::StrCat("/tmp\n", st.value("podIP", ""), "\n"));
  auto resolv = Exec(pod, "main", "cat /etc/resolv.conf");
  EXPECT_TRUE(absl::StrContains(resolv.stdout_text, "nameserver 10.43.0.10")) << resolv.stdout_text;
  EXPECT_TRUE(absl::StrContains(resolv.stdout_text,
                                "search default.svc.cluster.local svc.cluster.local cluster.local"))
      << resolv.stdout_text;
  EXPECT_TRUE(absl::StrContains(resolv.stdout_text, "options ndots:5")) << resolv.stdout_text;
  // Service links: the kubernetes Service of the default namespace.
  auto svc = Exec(pod, "main", "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT");
  EXPECT_TRUE(absl::StartsWith(svc.stdout_text, "10.43.0.1:")) << svc.stdout_text;
}

TEST_F(PodWorkerTest, ConfigMapSecretEmptyDirDownwardApiAndProjectedVolumes) {
  ASSERT_TRUE(client_->Create(res::kConfigMaps, "default",
                              {{"apiVersion", "v1"}, {"kind", "ConfigMap"},
                               {"metadata", {{"name", "files"}}}, {"data", {{"app.conf", "mode=fast\n"}}}})
                  .ok());
  ASSERT_TRUE(client_->Create(res::kSecrets, "default",
                              {{"apiVersion", "v1"}, {"kind", "Secret"},
                               {"metadata", {{"name", "creds"}}}, {"stringData", {{"token", "s3cret"}}}})
                  .ok());
  (void)client_->Create(res::kServiceAccounts, "default",
                        {{"apiVersion", "v1"}, {"kind", "ServiceAccount"}, {"metadata", {{"name", "default"}}}});
  json volumes = json::array({
      {{"name", "cfg"}, {"configMap", {{"name", "files"}}}},
      {{"name", "sec"}, {"secret", {{"secretName", "creds"}, {"defaultMode", 0400}}}},
      {{"name", "scratch"}, {"emptyDir", json::object()}},
      {{"name", "mem"}, {"emptyDir", {{"medium", "Memory"}}}},
      {{"name", "info"}, {"downwardAPI", {{"items", {{{"path", "labels"}, {"fieldRef", {{"fieldPath", "metadata.labels"}}}}}}}}},
      {{"name", "token"},
       {"projected",
        {{"sources",
          {{{"serviceAccountToken", {{"path", "token"}, {"expirationSeconds", 3600}}}},
           {{"configMap", {{"name", "files"}, {"items", {{{"key", "app.conf"}, {"path", "ca/app.conf"}}}}}}}}}}}},
  });
  json writer = Container("writer", "echo shared > /scratch/file; echo inmem > /mem/file; exec sleep 3600",
                          {{"volumeMounts", {{{"name", "scratch"}, {"mountPath", "/scratch"}},
                                             {{"name", "mem"}, {"mountPath", "/mem"}}}}});
  json reader = Container("reader", "exec sleep 3600",
                          {{"volumeMounts", {{{"name", "cfg"}, {"mountPath", "/etc/app"}},
                                             {{"name", "sec"}, {"mountPath", "/etc/creds"}, {"readOnly", true}},
                                             {{"name", "scratch"}, {"mountPath", "/data"}},
                                             {{"name", "info"}, {"mountPath", "/etc/podinfo"}},
                                             {{"name", "token"}, {"mountPath", "/var/run/secrets/tokens"}}}}});
  Create(Pod("vols", json::array({writer, reader}), {{"volumes", volumes}}));
  json pod = WaitPod("vols", [](const json& p) { return Condition(p, "Ready", "True"); });
  auto out = Exec(pod, "reader",
                  "cat /etc/app/app.conf /etc/creds/token; echo; stat -L -c %a /etc/creds/token; cat /data/file; "
                  "cat /etc/podinfo/labels; echo; cat /var/run/secrets/tokens/ca/app.conf; "
                  "wc -c < /var/run/secrets/tokens/token; touch /etc/creds/x 2>&1");
  EXPECT_TRUE(absl::StartsWith(out.stdout_text, "mode=fast\ns3cret\n400\nshared\napp=\"vols\"\nmode=fast\n"))
      << out.stdout_text << out.stderr_text;
  EXPECT_TRUE(absl::StrContains(out.stdout_text, "Read-only file system")) << out.stdout_text;
  auto mem = Exec(pod, "writer", "cat /mem/file; grep ' /mem ' /proc/mounts | cut -d' ' -f3");
  EXPECT_EQ(mem.stdout_text, "inmem\ntmpfs\n");

  // A changed configMap reaches the running pod (atomically swapped files).
  auto cm = client_->Get(res::kConfigMaps, "default", "files");
  ASSERT_TRUE(cm.ok());
  (*cm)["data"]["app.conf"] = "mode=safe\n";
  ASSERT_TRUE(client_->Update(res::kConfigMaps, "default", *cm).ok());
  std::string seen;
  for (int i = 0; i < 100 && seen != "mode=safe\n"; ++i) {
    seen = Exec(pod, "reader", "cat /etc/app/app.conf").stdout_text;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(seen, "mode=safe\n");
}

TEST_F(PodWorkerTest, RestartPoliciesAndCrashLoopBackOff) {
  Create(Pod("never", json::array({Container("c", "echo bye; exit 3")}), {{"restartPolicy", "Never"}}));
  Create(Pod("onfailure", json::array({Container("c", "exit 0")}), {{"restartPolicy", "OnFailure"}}));
  Create(Pod("always", json::array({Container("c", "echo crash; exit 1")})));

  json never = WaitPod("never", [](const json& p) { return Phase(p, "Failed"); });
  json cs = ContainerStatus(never, "c");
  EXPECT_EQ(cs.value("restartCount", -1), 0);
  EXPECT_EQ(cs["state"]["terminated"].value("reason", ""), "Error") << cs.dump();
  EXPECT_EQ(cs["state"]["terminated"].value("exitCode", -1), 3);

  json ok = WaitPod("onfailure", [](const json& p) { return Phase(p, "Succeeded"); });
  cs = ContainerStatus(ok, "c");
  EXPECT_EQ(cs["state"]["terminated"].value("reason", ""), "Completed") << cs.dump();
  EXPECT_EQ(cs.value("restartCount", -1), 0);

  // Always: restarted at once, then CrashLoopBackOff with the last exit as lastState.
  json always = WaitPod("always", [](const json& p) {
    json c = ContainerStatus(p, "c");
    return c.value("restartCount", 0) >= 2 && c["state"].contains("waiting") &&
           c["state"]["waiting"].value("reason", "") == "CrashLoopBackOff";
  });
  cs = ContainerStatus(always, "c");
  EXPECT_EQ(cs["lastState"]["terminated"].value("exitCode", -1), 1) << cs.dump();
  EXPECT_EQ(cs["lastState"]["terminated"].value("reason", ""), "Error");
  EXPECT_TRUE(Phase(always, "Running")) << always["status"].dump();
  EXPECT_TRUE(Condition(always, "Ready", "False"));
  // Each attempt has its own log file.
  EXPECT_TRUE(absl::StrContains(LogOf(always, "c", 1), "stdout F crash")) << LogOf(always, "c", 1);
}

TEST_F(PodWorkerTest, InitContainersRunInOrderAndMemoryLimitIsOomKilled) {
  json mount = {{"volumeMounts", {{{"name", "work"}, {"mountPath", "/work"}}}}};
  json pod = Pod("init", json::array({Container("main", "cat /work/order; exec sleep 3600", mount)}),
                 {{"volumes", {{{"name", "work"}, {"emptyDir", json::object()}}}},
                  {"initContainers", json::array({Container("first", "sleep 1; echo first >> /work/order", mount),
                                                  Container("second", "echo second >> /work/order", mount)})}});
  pod = Create(pod);
  json hog = Container("hog", "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
                       {{"resources", {{"limits", {{"memory", "8Mi"}}}}}});
  Create(Pod("oom", json::array({hog}), {{"restartPolicy", "Never"}}));

  json running = WaitPod("init", [](const json& p) { return Phase(p, "Running"); });
  EXPECT_TRUE(Condition(running, "Initialized", "True"));
  for (const char* name : {"first", "second"}) {
    json cs = ContainerStatus(running, name, "initContainerStatuses");
    EXPECT_EQ(cs["state"]["terminated"].value("reason", ""), "Completed") << cs.dump();
  }
  std::string log;
  for (int i = 0; i < 50 && !absl::StrContains(log, "second"); ++i) {
    log = LogOf(running, "main");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(absl::StrContains(log, "stdout F first\n")) << log;
  EXPECT_LT(log.find("first"), log.find("second")) << log;

  json oom = WaitPod("oom", [](const json& p) { return Phase(p, "Failed"); });
  json cs = ContainerStatus(oom, "hog");
  EXPECT_EQ(cs["state"]["terminated"].value("reason", ""), "OOMKilled") << cs.dump();
  EXPECT_EQ(cs["state"]["terminated"].value("exitCode", -1), 137);
}

TEST_F(PodWorkerTest, ProbesRestartOnLivenessAndGateReadiness) {
  json live = Container("c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 3600",
                        {{"livenessProbe", {{"exec", {{"command", {"test", "-f", "/tmp/healthy"}}}},
                                            {"periodSeconds", 1}, {"failureThreshold", 2}}}});
  Create(Pod("liveness", json::array({live})));
  json ready = Container("c", "exec sleep 3600",
                         {{"readinessProbe", {{"exec", {{"command", {"test", "-f", "/tmp/ready"}}}},
                                              {"periodSeconds", 1}}}});
  Create(Pod("readiness", json::array({ready})));
  // httpGet readiness and tcpSocket liveness against the pod IP.
  json web = Container("web", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www",
                       json::parse(R"J({"ports": [{"name": "http", "containerPort": 8080}],
                         "readinessProbe": {"httpGet": {"path": "/index.html", "port": "http"}, "periodSeconds": 1},
                         "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}})J"));
  Create(Pod("web", json::array({web})));

  json pod = WaitPod("readiness", [](const json& p) { return Phase(p, "Running"); });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  pod = WaitPod("readiness", [](const json& p) { return Phase(p, "Running"); });
  EXPECT_TRUE(Condition(pod, "Ready", "False")) << pod["status"].dump();
  EXPECT_TRUE(Condition(pod, "ContainersReady", "False"));
  Exec(pod, "c", "touch /tmp/ready");
  pod = WaitPod("readiness", [](const json& p) { return Condition(p, "Ready", "True"); });
  EXPECT_EQ(ContainerStatus(pod, "c").value("ready", false), true);

  json restarted = WaitPod("liveness", [](const json& p) {
    return ContainerStatus(p, "c").value("restartCount", 0) >= 1;
  });
  EXPECT_TRUE(ContainerStatus(restarted, "c")["lastState"].contains("terminated")) << restarted["status"].dump();

  json webpod = WaitPod("web", [](const json& p) { return Condition(p, "Ready", "True"); });
  EXPECT_EQ(ContainerStatus(webpod, "web").value("restartCount", -1), 0);
}

TEST_F(PodWorkerTest, TwoPodsReachEachOtherByPodIp) {
  json server = Container("srv", "mkdir -p /www && echo pong > /www/index.html && exec httpd -f -p 8080 -h /www");
  Create(Pod("server", json::array({server})));
  Create(Pod("client", json::array({Container("cli", "exec sleep 3600")})));
  json s = WaitPod("server", [](const json& p) { return Condition(p, "Ready", "True"); });
  json c = WaitPod("client", [](const json& p) { return Condition(p, "Ready", "True"); });
  std::string ip = s["status"].value("podIP", "");
  ASSERT_FALSE(ip.empty());
  EXPECT_NE(ip, c["status"].value("podIP", ""));
  // busybox nc speaks HTTP to the other pod's httpd (busybox-static's wget crashes resolving).
  std::string got;
  for (int i = 0; i < 20 && !absl::StrContains(got, "pong"); ++i) {
    got = Exec(c, "cli", absl::StrCat("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ", ip, " 8080"))
              .stdout_text;
    if (!absl::StrContains(got, "pong")) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_TRUE(absl::StrContains(got, "200 OK")) << got;
  EXPECT_TRUE(absl::StrContains(got, "\r\n\r\npong\n")) << got;
}

TEST_F(PodWorkerTest, RestartedKubeletAdoptsAndRemovesPodsDeletedMeanwhile) {
  Create(Pod("keep", json::array({Container("c", "exec sleep 3600")})));
  json gone = Create(Pod("gone", json::array({Container("c", "exec sleep 3600")})));
  json keep = WaitPod("keep", [](const json& p) { return Condition(p, "Ready", "True"); });
  WaitPod("gone", [](const json& p) { return Condition(p, "Ready", "True"); });
  std::string id = ContainerId(keep, "c");
  auto before = runtime_->GetContainerStatus(id);
  ASSERT_TRUE(before.ok());

  manager_->Stop();
  manager_.reset();
  client::DeleteOptions now;
  now.grace_period_seconds = 0;
  ASSERT_TRUE(client_->Delete(res::kPods, "default", "gone", now).ok());
  StartManager();

  // The pod deleted while the kubelet was down is torn down.
  std::string gone_uid = gone["metadata"].value("uid", "");
  bool removed = false;
  for (int i = 0; i < 150 && !removed; ++i) {
    auto sandboxes = runtime_->ListPodSandboxes();
    ASSERT_TRUE(sandboxes.ok());
    removed = std::none_of(sandboxes->begin(), sandboxes->end(),
                           [&](const auto& s) { return s.config.uid == gone_uid; });
    if (!removed) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(removed);
  EXPECT_FALSE(PathExists(options_.pods_dir + "/" + gone_uid));
  // The other keeps its container: same id, same process, no restart.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  keep = WaitPod("keep", [](const json& p) { return Condition(p, "Ready", "True"); });
  EXPECT_EQ(ContainerId(keep, "c"), id);
  EXPECT_EQ(ContainerStatus(keep, "c").value("restartCount", -1), 0);
  auto after = runtime_->GetContainerStatus(id);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->pid, before->pid);
  EXPECT_EQ(after->state, runtime::ContainerState::kRunning);
}

TEST_F(PodWorkerTest, GracefulDeletionRunsPreStopAndLeavesNothingBehind) {
  ASSERT_TRUE(client_->Create(res::kSecrets, "default",
                              {{"apiVersion", "v1"}, {"kind", "Secret"},
                               {"metadata", {{"name", "s"}}}, {"stringData", {{"k", "v"}}}})
                  .ok());
  std::string marker_dir = dir_.File("hooks");
  ASSERT_TRUE(MakeDirectories(marker_dir, 0755).ok());
  json c = Container("c", "trap 'echo term >> /hooks/log; exit 0' TERM; while true; do sleep 0.2; done",
                     {{"lifecycle", {{"preStop", {{"exec", {{"command", {"sh", "-c", "echo prestop >> /hooks/log"}}}}}}}},
                      {"ports", {{{"containerPort", 80}, {"hostPort", 30000 + static_cast<int>(std::stoi(suffix_) % 20000)}}}},
                      {"volumeMounts", {{{"name", "hooks"}, {"mountPath", "/hooks"}},
                                        {{"name", "sec"}, {"mountPath", "/sec"}},
                                        {{"name", "mem"}, {"mountPath", "/mem"}}}}});
  json pod = Create(Pod("bye", json::array({c}),
                        {{"terminationGracePeriodSeconds", 10},
                         {"volumes", {{{"name", "hooks"}, {"hostPath", {{"path", marker_dir}, {"type", "Directory"}}}},
                                      {{"name", "sec"}, {"secret", {{"secretName", "s"}}}},
                                      {{"name", "mem"}, {"emptyDir", {{"medium", "Memory"}}}}}}}));
  pod = WaitPod("bye", [](const json& p) { return Condition(p, "Ready", "True"); });
  std::string uid = pod["metadata"].value("uid", "");
  auto sandboxes = runtime_->ListPodSandboxes();
  ASSERT_TRUE(sandboxes.ok());
  ASSERT_EQ(sandboxes->size(), 1u);
  runtime::PodSandboxStatus sandbox = sandboxes->front();
  EXPECT_TRUE(absl::StrContains(MountInfo(), options_.pods_dir + "/" + uid));

  ASSERT_TRUE(client_->Delete(res::kPods, "default", "bye").ok());
  // The kubelet stops the pod and then deletes the object for good.
  bool deleted = false;
  for (int i = 0; i < 300 && !deleted; ++i) {
    auto got = client_->Get(res::kPods, "default", "bye");
    deleted = !got.ok() && client::IsNotFound(got.status());
    if (!deleted) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(deleted);
  auto hooks = ReadFileToString(marker_dir + "/log");
  ASSERT_TRUE(hooks.ok());
  EXPECT_EQ(*hooks, "prestop\nterm\n");

  auto left = runtime_->ListPodSandboxes();
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
  EXPECT_FALSE(PathExists(sandbox.netns_path.empty() ? runtime_->NetnsPath(sandbox.id) : sandbox.netns_path));
  auto links = RunSubprocess({"ip", "-o", "link", "show", "master", bridge_});
  ASSERT_TRUE(links.ok());
  EXPECT_EQ(links->stdout_text, "");
  EXPECT_FALSE(absl::StrContains(MountInfo(), dir_.path())) << MountInfo();
  EXPECT_FALSE(PathExists(sandbox.cgroup_path)) << sandbox.cgroup_path;
  std::error_code ec;
  EXPECT_TRUE(std::filesystem::is_empty(rt_options_.state_dir + "/runc", ec) || ec);
  EXPECT_TRUE(std::filesystem::is_empty(rt_options_.state_dir + "/containers", ec) || ec);
  EXPECT_FALSE(PathExists(options_.pods_dir + "/" + uid));
}

}  // namespace
}  // namespace kelpie::kubelet
