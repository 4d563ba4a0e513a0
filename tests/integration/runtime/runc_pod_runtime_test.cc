// Root tests of the runc pod runtime: real runc, real CNI plugins, the
// busybox test image. Each test uses its own bridge, pod CIDR, cgroup parent
// and state directory and removes all of it, also on failure.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/subprocess.h"
#include "orchestrator/runtime/image/image_store.h"
#include "orchestrator/runtime/runc/cri_log_writer.h"
#include "orchestrator/runtime/runc_pod_runtime.h"
#include "tests/testing/busybox_image.h"
#include "tests/testing/test_env.h"

namespace kelpie::runtime {
namespace {

using testing::TempDir;

class RuncPodRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KELPIE_REQUIRE_PRIVILEGES();
    std::random_device rd;
    int octet = static_cast<int>(rd() % 200) + 20;
    suffix_ = absl::StrCat(rd() % 100000);
    bridge_ = absl::StrCat("kt", suffix_);
    options_.state_dir = dir_.File("state");
    options_.log_dir = dir_.File("logs");
    options_.shim_command = {testing::KelpieBinary(), "runtime-shim"};
    options_.cgroup_parent = absl::StrCat("/kelpie-test-", suffix_, ".slice");
    options_.cni.bridge = bridge_;
    options_.cni.network_name = absl::StrCat("kelpie-test-", suffix_);
    options_.cni.pod_cidr = absl::StrCat("10.42.", octet, ".0/24");
    auto images = image::ImageStore::Open(dir_.File("data"));
    ASSERT_TRUE(images.ok()) << images.status();
    images_ = std::move(*images);
    auto archive = testing::BuildBusyboxImage(dir_.path());
    ASSERT_TRUE(archive.ok()) << archive.status();
    ASSERT_TRUE(images_->Import(*archive).ok());
    auto rt = RuncPodRuntime::Create(options_, *images_);
    ASSERT_TRUE(rt.ok()) << rt.status();
    runtime_ = std::move(*rt);
  }

  void TearDown() override {
    if (runtime_) {
      auto sandboxes = runtime_->ListPodSandboxes();
      if (sandboxes.ok()) {
        for (const auto& s : *sandboxes) EXPECT_TRUE(runtime_->RemovePodSandbox(s.id).ok());
      }
      (void)runtime_->cgroups().RemoveParentIfEmpty();
    }
    if (!bridge_.empty()) (void)RunSubprocess({"ip", "link", "del", bridge_});
  }

  PodSandboxConfig Pod(const std::string& name) {
    PodSandboxConfig c;
    c.name = name;
    c.pod_namespace = "default";
    c.uid = absl::StrCat("uid-", name, "-", suffix_);
    return c;
  }

  ContainerConfig Container(const std::string& name, std::vector<std::string> command) {
    ContainerConfig c;
    c.name = name;
    c.image = "busybox";
    c.command = std::move(command);
    return c;
  }

  ContainerStatus WaitExited(const std::string& id) {
    ContainerStatus s;
    for (int i = 0; i < 600; ++i) {
      auto st = runtime_->GetContainerStatus(id);
      EXPECT_TRUE(st.ok()) << st.status();
      if (!st.ok()) return s;
      s = *st;
      if (s.state == ContainerState::kExited) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "container " << id << " did not exit";
    return s;
  }

  std::string RunToExit(const std::string& sandbox, ContainerConfig config, ContainerStatus* status) {
    auto id = runtime_->CreateContainer(sandbox, config);
    EXPECT_TRUE(id.ok()) << id.status();
    if (!id.ok()) return "";
    EXPECT_TRUE(runtime_->StartContainer(*id).ok());
    *status = WaitExited(*id);
    return *id;
  }

  TempDir dir_;
  std::string suffix_, bridge_;
  RuncRuntimeOptions options_;
  std::unique_ptr<image::ImageStore> images_;
  std::unique_ptr<RuncPodRuntime> runtime_;
};

TEST_F(RuncPodRuntimeTest, EchoLogsInCriFormatAndExitCodes) {
  auto sandbox = runtime_->RunPodSandbox(Pod("echo"));
  ASSERT_TRUE(sandbox.ok()) << sandbox.status();
  auto status = runtime_->GetPodSandboxStatus(*sandbox);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state, SandboxState::kReady);
  EXPECT_TRUE(absl::StartsWith(status->ip, "10.42.")) << status->ip;
  struct stat st;
  ASSERT_EQ(::stat(status->cgroup_path.c_str(), &st), 0) << status->cgroup_path;
  EXPECT_EQ(status->cgroup_id, st.st_ino);

  ContainerStatus hello;
  RunToExit(*sandbox, Container("hello", {"echo", "hello"}), &hello);
  EXPECT_EQ(hello.exit_code, 0);
  EXPECT_EQ(hello.reason, "Completed");
  EXPECT_EQ(hello.log_path, absl::StrCat(options_.log_dir, "/default_echo_uid-echo-", suffix_, "/hello/0.log"));
  auto log = ReadFileToString(hello.log_path);
  ASSERT_TRUE(log.ok()) << log.status();
  CriLogWriter::Line line;
  ASSERT_TRUE(CriLogWriter::ParseLine(*log, &line)) << *log;
  EXPECT_EQ(line.stream, "stdout");
  EXPECT_FALSE(line.partial);
  EXPECT_EQ(line.content, "hello");

  ContainerStatus failed;
  RunToExit(*sandbox, Container("fail", {"sh", "-c", "echo oops >&2; exit 3"}), &failed);
  EXPECT_EQ(failed.exit_code, 3);
  EXPECT_EQ(failed.reason, "Error");
  auto err_log = ReadFileToString(failed.log_path);
  ASSERT_TRUE(err_log.ok());
  EXPECT_TRUE(absl::StrContains(*err_log, " stderr F oops")) << *err_log;

  // The container's hostname is the pod name; it ran in the pod's cgroup.
  ContainerStatus host;
  RunToExit(*sandbox, Container("host", {"sh", "-c", "hostname; cat /proc/self/cgroup"}), &host);
  auto host_log = ReadFileToString(host.log_path);
  ASSERT_TRUE(host_log.ok());
  EXPECT_TRUE(absl::StrContains(*host_log, " stdout F echo\n")) << *host_log;
  EXPECT_EQ(host.exit_code, 0);
}

TEST_F(RuncPodRuntimeTest, MemoryLimitIsOomKilled) {
  auto sandbox = runtime_->RunPodSandbox(Pod("oom"));
  ASSERT_TRUE(sandbox.ok()) << sandbox.status();
  ContainerConfig hog = Container("hog", {"sh", "-c", "exec dd if=/dev/zero of=/dev/null bs=64M count=1"});
  hog.resources.memory_limit_bytes = 8 * 1024 * 1024;
  ContainerStatus status;
  RunToExit(*sandbox, hog, &status);
  EXPECT_EQ(status.reason, "OOMKilled");
  EXPECT_EQ(status.exit_code, 137);
}

TEST_F(RuncPodRuntimeTest, SecurityContextExecAndAdoption) {
  auto sandbox = runtime_->RunPodSandbox(Pod("sec"));
  ASSERT_TRUE(sandbox.ok()) << sandbox.status();
  ContainerConfig c = Container("sleeper", {"sleep", "300"});
  c.security.run_as_user = 1234;
  c.security.run_as_group = 2345;
  c.security.read_only_root_filesystem = true;
  auto id = runtime_->CreateContainer(*sandbox, c);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(runtime_->StartContainer(*id).ok());
  auto running = runtime_->GetContainerStatus(*id);
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->state, ContainerState::kRunning);

  auto uid = runtime_->ExecSync(*id, {"id", "-u"}, std::chrono::seconds(20));
  ASSERT_TRUE(uid.ok()) << uid.status();
  EXPECT_EQ(uid->exit_code, 0);
  EXPECT_EQ(uid->stdout_text, "1234\n");
  auto gid = runtime_->ExecSync(*id, {"id", "-g"}, std::chrono::seconds(20));
  ASSERT_TRUE(gid.ok());
  EXPECT_EQ(gid->stdout_text, "2345\n");
  // As root (who may write anywhere) the read-only root file system refuses.
  ContainerConfig ro = Container("ro", {"sh", "-c", "touch /x"});
  ro.security.read_only_root_filesystem = true;
  ContainerStatus ro_status;
  RunToExit(*sandbox, ro, &ro_status);
  EXPECT_NE(ro_status.exit_code, 0);
  auto ro_log = ReadFileToString(ro_status.log_path);
  ASSERT_TRUE(ro_log.ok());
  EXPECT_TRUE(absl::StrContains(*ro_log, "Read-only file system")) << *ro_log;
  auto code = runtime_->ExecSync(*id, {"sh", "-c", "echo out; exit 7"}, std::chrono::seconds(20));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(code->exit_code, 7);
  EXPECT_EQ(code->stdout_text, "out\n");
  auto slow = runtime_->ExecSync(*id, {"sleep", "60"}, std::chrono::milliseconds(500));
  ASSERT_TRUE(slow.ok());
  EXPECT_TRUE(slow->timed_out);

  // A second runtime over the same state directory adopts the container.
  auto second = RuncPodRuntime::Create(options_, *images_);
  ASSERT_TRUE(second.ok()) << second.status();
  auto listed = (*second)->GetContainerStatus(*id);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->state, ContainerState::kRunning);
  EXPECT_EQ(listed->pid, running->pid);
  auto all = (*second)->ListContainers(*sandbox);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
  auto pods = (*second)->ListPodSandboxes();
  ASSERT_TRUE(pods.ok());
  ASSERT_EQ(pods->size(), 1u);
  EXPECT_EQ((*pods)[0].state, SandboxState::kReady);
  auto echo = (*second)->ExecSync(*id, {"echo", "adopted"}, std::chrono::seconds(20));
  ASSERT_TRUE(echo.ok());
  EXPECT_EQ(echo->stdout_text, "adopted\n");
  ASSERT_TRUE((*second)->StopContainer(*id, std::chrono::seconds(5)).ok());
  auto stopped = runtime_->GetContainerStatus(*id);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->state, ContainerState::kExited);
  // sleep is pid 1 of its namespace without a SIGTERM handler: the signal is
  // ignored, the grace runs out and SIGKILL follows.
  EXPECT_EQ(stopped->exit_code, 137);
}

TEST_F(RuncPodRuntimeTest, PodsReachEachOtherAndCleanupLeavesNothing) {
  auto a = runtime_->RunPodSandbox(Pod("a"));
  ASSERT_TRUE(a.ok()) << a.status();
  PodSandboxConfig pb = Pod("b");
  int host_port = testing::FreeTcpPort();
  pb.port_mappings.push_back({"tcp", 8080, host_port, ""});
  auto b = runtime_->RunPodSandbox(pb);
  ASSERT_TRUE(b.ok()) << b.status();
  auto sa = runtime_->GetPodSandboxStatus(*a);
  auto sb = runtime_->GetPodSandboxStatus(*b);
  ASSERT_TRUE(sa.ok() && sb.ok());
  EXPECT_NE(sa->ip, sb->ip);

  auto server = runtime_->CreateContainer(
      *b, Container("server", {"sh", "-c", "while true; do echo pong | nc -l -p 8080; done"}));
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(runtime_->StartContainer(*server).ok());
  auto client = runtime_->CreateContainer(*a, Container("client", {"sleep", "300"}));
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(runtime_->StartContainer(*client).ok());

  std::string reply;
  for (int i = 0; i < 50 && reply.find("pong") == std::string::npos; ++i) {
    auto r = runtime_->ExecSync(*client, {"sh", "-c", absl::StrCat("echo ping | nc -w 2 ", sb->ip, " 8080")},
                                std::chrono::seconds(10));
    ASSERT_TRUE(r.ok()) << r.status();
    reply = r->stdout_text;
    if (reply.find("pong") == std::string::npos) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(absl::StrContains(reply, "pong"));

  // hostPort through portmap, from the host's loopback.
  std::string via_host;
  for (int i = 0; i < 50 && via_host.find("pong") == std::string::npos; ++i) {
    auto r = RunSubprocess({"busybox", "sh", "-c", absl::StrCat("echo ping | busybox nc -w 2 127.0.0.1 ", host_port)},
                           {std::chrono::seconds(10)});
    ASSERT_TRUE(r.ok());
    via_host = r->stdout_text;
    if (via_host.find("pong") == std::string::npos) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(absl::StrContains(via_host, "pong"));

  std::vector<std::string> ids = {*a, *b};
  std::vector<std::string> pod_uids = {sa->config.uid, sb->config.uid};
  for (const auto& id : ids) ASSERT_TRUE(runtime_->RemovePodSandbox(id).ok());
  for (const auto& id : ids) ASSERT_TRUE(runtime_->RemovePodSandbox(id).ok());  // idempotent

  // Nothing is left: no netns, veth on the bridge, overlay mount, cgroup, runc
  // state, IPAM lease or portmap chain.
  EXPECT_FALSE(PathExists(runtime_->NetnsPath(*a)));
  auto veths = RunSubprocess({"ip", "-o", "link", "show", "master", bridge_});
  ASSERT_TRUE(veths.ok());
  EXPECT_EQ(veths->stdout_text, "");
  auto mounts = ReadFileToString("/proc/self/mountinfo");
  ASSERT_TRUE(mounts.ok());
  EXPECT_FALSE(absl::StrContains(*mounts, options_.state_dir));
  for (const auto& uid : pod_uids) {
    EXPECT_FALSE(PathExists(runtime_->cgroups().hierarchy().v2_root + runtime_->cgroups().PodRelativePath(uid)));
    for (const auto& v1 : runtime_->cgroups().hierarchy().v1_mounts) {
      EXPECT_FALSE(PathExists(v1 + runtime_->cgroups().PodRelativePath(uid))) << v1;
    }
  }
  auto runc_list = RunSubprocess({"runc", "--root", runtime_->runc_root(), "list", "-q"});
  ASSERT_TRUE(runc_list.ok());
  EXPECT_EQ(runc_list->stdout_text, "");
  auto leases = RunSubprocess({"sh", "-c", absl::StrCat("ls ", runtime_->network().ipam_data_dir(), " | grep -v lock | grep -v last_reserved || true")});
  ASSERT_TRUE(leases.ok());
  EXPECT_EQ(leases->stdout_text, "");
  auto nat = RunSubprocess({"iptables", "-t", "nat", "-S"});
  ASSERT_TRUE(nat.ok());
  EXPECT_FALSE(absl::StrContains(nat->stdout_text, *b)) << "portmap chain of the pod left behind";
  EXPECT_FALSE(absl::StrContains(nat->stdout_text, std::to_string(host_port)));
}

}  // namespace
}  // namespace kelpie::runtime
