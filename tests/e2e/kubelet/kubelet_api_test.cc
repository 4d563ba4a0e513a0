// `kubectl logs`, `exec` and `port-forward` end to end: the real kubectl
// v1.32 against `kelpie server`, whose API server proxies to its own
// node's kubelet API, which reads the pod's CRI logs, runs execs in the
// container with runc and forwards ports into the pod's network namespace.
//
// Root, real runc and CNI plugins. Until the pod worker runs pods from the
// API, this test stands in for it: it creates the Pod object with
// spec.nodeName set and starts the sandbox and containers itself through a
// RuncPodRuntime over the state directory the server's kubelet reads, with
// the Pod's name, namespace and uid.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/subprocess.h"
#include "orchestrator/runtime/image/image_store.h"
#include "orchestrator/runtime/runc_pod_runtime.h"
#include "tests/testing/busybox_image.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using nlohmann::json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class KubeletApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KELPIE_REQUIRE_PRIVILEGES();
    std::random_device rd;
    suffix_ = absl::StrCat(rd() % 100000);
    node_ = absl::StrCat("kubelet-api-", suffix_);
    bridge_ = absl::StrCat("kk", suffix_);
    int octet = static_cast<int>(rd() % 200) + 20;
    runtime::RuncRuntimeOptions ro;
    // Where the server's kubelet API looks: <data-dir>/runtime.
    ro.state_dir = dir_.File("data") + "/runtime";
    ro.log_dir = dir_.File("pods");
    ro.shim_command = {testing::KelpieBinary(), "runtime-shim"};
    ro.cgroup_parent = absl::StrCat("/kelpie-kapi-", suffix_, ".slice");
    ro.cni.bridge = bridge_;
    ro.cni.network_name = absl::StrCat("kelpie-kapi-", suffix_);
    ro.cni.pod_cidr = absl::StrCat("10.42.", octet, ".0/24");
    auto images = image::ImageStore::Open(dir_.File("images"));
    ASSERT_TRUE(images.ok()) << images.status();
    images_ = std::move(*images);
    auto archive = testing::BuildBusyboxImage(dir_.path());
    ASSERT_TRUE(archive.ok()) << archive.status();
    ASSERT_TRUE(images_->Import(*archive).ok());
    auto rt = runtime::RuncPodRuntime::Create(ro, *images_);
    ASSERT_TRUE(rt.ok()) << rt.status();
    runtime_ = std::move(*rt);

    kubelet_port_ = testing::FreeTcpPort();
    auto server = testing::KelpieServer::Start(
        dir_.File("data"), testing::FreeTcpPort(), dir_.File("server.log"),
        {"--register-node=true", "--node-name=" + node_, "--node-ip=127.0.0.1",
         absl::StrCat("--kubelet-port=", kubelet_port_), "--kubelet-bind-address=127.0.0.1",
         "--pod-log-dir=" + ro.log_dir,
         // The test's runtime stands in for the pod worker.
         "--run-pods=false"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    // The node registers with its kubelet endpoint.
    bool registered = false;
    for (int i = 0; i < 200 && !registered; ++i) {
      auto r = Kubectl({"get", "node", node_, "-o", "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}"});
      registered = r.Succeeded() && r.stdout_text == std::to_string(kubelet_port_);
      if (!registered) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(registered) << server_->Log();
  }

  void TearDown() override {
    if (runtime_) {
      auto sandboxes = runtime_->ListPodSandboxes();
      if (sandboxes.ok()) {
        for (const auto& s : *sandboxes) EXPECT_TRUE(runtime_->RemovePodSandbox(s.id).ok());
      }
      (void)runtime_->cgroups().RemoveParentIfEmpty();
    }
    server_.reset();
    if (!bridge_.empty()) (void)RunSubprocess({"ip", "link", "del", bridge_});
  }

  SubprocessResult Kubectl(const std::vector<std::string>& args,
                           const std::optional<std::string>& stdin_text = std::nullopt) {
    return server_->Kubectl(args, "", stdin_text);
  }

  // Stands in for the pod worker: the Pod through the API, bound to this
  // node, and its sandbox and containers through the runtime.
  void RunPod(const std::string& name, const std::vector<std::pair<std::string, std::string>>& containers) {
    json spec_containers = json::array();
    for (const auto& [cname, script] : containers) {
      spec_containers.push_back({{"name", cname}, {"image", "busybox"}, {"command", {"sh", "-c", script}}});
    }
    json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}, {"namespace", "default"}}},
                {"spec", {{"nodeName", node_}, {"containers", spec_containers}}}};
    auto created = Kubectl({"create", "--validate=false", "-f", "-", "-o", "jsonpath={.metadata.uid}"}, pod.dump());
    ASSERT_TRUE(created.Succeeded()) << created.stderr_text;
    runtime::PodSandboxConfig sc;
    sc.name = name;
    sc.pod_namespace = "default";
    sc.uid = created.stdout_text;
    auto sandbox = runtime_->RunPodSandbox(sc);
    ASSERT_TRUE(sandbox.ok()) << sandbox.status();
    for (const auto& [cname, script] : containers) {
      runtime::ContainerConfig cc;
      cc.name = cname;
      cc.image = "busybox";
      cc.command = {"sh", "-c", script};
      auto id = runtime_->CreateContainer(*sandbox, cc);
      ASSERT_TRUE(id.ok()) << id.status();
      ASSERT_TRUE(runtime_->StartContainer(*id).ok());
    }
    // The worker reports the pod running (kubectl port-forward checks it).
    auto patched = Kubectl({"patch", "pod", name, "--subresource=status", "--type=merge", "-p",
                            R"({"status":{"phase":"Running"}})"});
    ASSERT_TRUE(patched.Succeeded()) << patched.stderr_text;
  }

  testing::TempDir dir_;
  std::string suffix_, node_, bridge_;
  int kubelet_port_ = 0;
  std::unique_ptr<image::ImageStore> images_;
  std::unique_ptr<runtime::RuncPodRuntime> runtime_;
  std::unique_ptr<testing::KelpieServer> server_;
};

TEST_F(KubeletApiTest, LogsExecAndPortForwardWithKubectl) {
  ASSERT_NO_FATAL_FAILURE(RunPod(
      "web", {{"main", "echo hello-from-pod; echo to-stderr >&2; nc -ll -p 8080 -e cat"},
              {"counter", "for i in 1 2 3; do echo line $i; sleep 1; done"}}));

  // kubectl logs: the main container's output, both streams, as plain text.
  std::string logs;
  for (int i = 0; i < 100 && !absl::StrContains(logs, "to-stderr"); ++i) {
    auto r = Kubectl({"logs", "web", "-c", "main"});
    logs = r.stdout_text;
    if (!absl::StrContains(logs, "to-stderr")) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // Both streams, one line each (their order across the two pipes is the
  // shim's).
  EXPECT_TRUE(logs == "hello-from-pod\nto-stderr\n" || logs == "to-stderr\nhello-from-pod\n") << logs;
  auto stamped = Kubectl({"logs", "web", "-c", "main", "--timestamps", "--tail=1"});
  EXPECT_TRUE(stamped.Succeeded()) << stamped.stderr_text;
  EXPECT_EQ(std::count(stamped.stdout_text.begin(), stamped.stdout_text.end(), '\n'), 1) << stamped.stdout_text;
  EXPECT_TRUE(absl::StrContains(stamped.stdout_text, "Z to-stderr\n") ||
              absl::StrContains(stamped.stdout_text, "Z hello-from-pod\n"))
      << stamped.stdout_text;
  auto limited = Kubectl({"logs", "web", "-c", "main", "--limit-bytes=5"});
  EXPECT_EQ(limited.stdout_text.size(), 5u) << limited.stdout_text;

  // kubectl logs -f follows until the container exits.
  auto followed = Kubectl({"logs", "-f", "web", "-c", "counter"});
  EXPECT_TRUE(followed.Succeeded()) << followed.stderr_text;
  EXPECT_EQ(followed.stdout_text, "line 1\nline 2\nline 3\n");

  // kubectl exec returns the command's exit code.
  auto ok = Kubectl({"exec", "web", "-c", "main", "--", "sh", "-c", "echo out; echo err >&2"});
  EXPECT_TRUE(ok.Succeeded()) << ok.stderr_text;
  EXPECT_EQ(ok.stdout_text, "out\n");
  EXPECT_TRUE(absl::StrContains(ok.stderr_text, "err")) << ok.stderr_text;
  auto three = Kubectl({"exec", "web", "-c", "main", "--", "sh", "-c", "exit 3"});
  EXPECT_EQ(three.exit_code, 3) << three.stderr_text;

  // kubectl exec -i carries stdin, and its end.
  auto cat = Kubectl({"exec", "-i", "web", "-c", "main", "--", "sh", "-c", "cat; echo done"},
                     std::string("through stdin\n"));
  EXPECT_TRUE(cat.Succeeded()) << cat.stderr_text;
  EXPECT_EQ(cat.stdout_text, "through stdin\ndone\n");

  // kubectl cp (tar through exec, both ways).
  {
    std::ofstream(dir_.File("to-pod.txt")) << "copied through exec\n";
    auto to_pod = Kubectl({"cp", dir_.File("to-pod.txt"), "default/web:/tmp/to-pod.txt", "-c", "main"});
    EXPECT_TRUE(to_pod.Succeeded()) << to_pod.stderr_text;
    auto shown = Kubectl({"exec", "web", "-c", "main", "--", "cat", "/tmp/to-pod.txt"});
    EXPECT_EQ(shown.stdout_text, "copied through exec\n") << shown.stderr_text;
    auto back = Kubectl({"cp", "default/web:/tmp/to-pod.txt", dir_.File("back.txt"), "-c", "main"});
    EXPECT_TRUE(back.Succeeded()) << back.stderr_text;
    EXPECT_EQ(ReadFile(dir_.File("back.txt")), "copied through exec\n");
  }

  // kubectl port-forward carries bytes to the echo server in the pod: SPDY
  // tunneled in a WebSocket (kubectl's default), then a direct SPDY/3.1
  // upgrade (its fallback).
  for (bool websockets : {true, false}) {
    SCOPED_TRACE(websockets ? "SPDY over WebSocket" : "SPDY upgrade");
    int local_port = testing::FreeTcpPort();
    ChildProcess::Options po;
    po.stdout_path = dir_.File(absl::StrCat("port-forward-", websockets, ".log"));
    po.env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = websockets ? "true" : "false";
    auto forward = ChildProcess::Start({"kubectl", "--kubeconfig", server_->kubeconfig(), "port-forward",
                                        "--address=127.0.0.1", "pod/web", absl::StrCat(local_port, ":8080")},
                                       po);
    ASSERT_TRUE(forward.ok()) << forward.status();
    for (int i = 0; i < 200 && !absl::StrContains(ReadFile(po.stdout_path), "Forwarding from"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(absl::StrContains(ReadFile(po.stdout_path), "Forwarding from")) << ReadFile(po.stdout_path);
    for (int round = 0; round < 2; ++round) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      ASSERT_GE(fd, 0);
      timeval tv{10, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<uint16_t>(local_port));
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
      std::string message = absl::StrCat("ping ", round, " ", std::string(100000, 'x'), "\n");
      std::thread writer([&] { ::send(fd, message.data(), message.size(), MSG_NOSIGNAL); });
      std::string echoed;
      char buf[65536];
      while (echoed.size() < message.size()) {
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        echoed.append(buf, static_cast<size_t>(n));
      }
      writer.join();
      ::close(fd);
      EXPECT_EQ(echoed.size(), message.size());
      EXPECT_TRUE(echoed == message) << "echo differs in round " << round;
    }
    forward->Signal(SIGTERM);
    forward->Wait(std::chrono::seconds(10));
  }

  // The API's errors, as kube-apiserver words them.
  auto missing = Kubectl({"logs", "nosuchpod"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(missing.stderr_text, "pods \"nosuchpod\" not found")) << missing.stderr_text;
  auto bad_container = Kubectl({"exec", "web", "-c", "nope", "--", "true"});
  EXPECT_NE(bad_container.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(bad_container.stderr_text, "container nope is not valid for pod web"))
      << bad_container.stderr_text;
  json unbound = {{"apiVersion", "v1"},
                  {"kind", "Pod"},
                  {"metadata", {{"name", "unbound"}}},
                  // No scheduler picks it up, so it stays unbound.
                  {"spec", {{"schedulerName", "no-such-scheduler"},
                            {"containers", json::array({{{"name", "c"}, {"image", "busybox"}}})}}}};
  ASSERT_TRUE(Kubectl({"create", "--validate=false", "-f", "-"}, unbound.dump()).Succeeded());
  auto no_host = Kubectl({"exec", "unbound", "--", "true"});
  EXPECT_NE(no_host.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(no_host.stderr_text, "pod unbound does not have a host assigned")) << no_host.stderr_text;
}

}  // namespace
}  // namespace kelpie
