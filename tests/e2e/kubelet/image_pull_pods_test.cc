// Root test of the kubelet's image pull step with everything real: a
// `kelpie server`, the pod manager in-process over its own runc runtime
// (own bridge, pod CIDR, cgroup parent), Debian's docker-registry on
// loopback holding a busybox image the test pushed, and the kubelet's
// event recorder writing Events through the API. A pod whose image is only
// in the registry is pulled and runs; a missing image shows ErrImagePull,
// then ImagePullBackOff, for both Always and IfNotPresent; Never shows
// ErrImageNeverPull; imagePullSecrets credentials reach a registry that
// wants them. No registry but the loopback one is ever contacted.
#include <chrono>
#include <filesystem>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base64.h"
#include "common/files.h"
#include "common/subprocess.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/rest_event_recorder.h"
#include "orchestrator/kubelet/image_pull_manager.h"
#include "orchestrator/kubelet/pod_manager.h"
#include "orchestrator/kubelet/pod_volumes.h"
#include "orchestrator/runtime/image/image_puller.h"
#include "orchestrator/runtime/image/image_store.h"
#include "orchestrator/runtime/runc_pod_runtime.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/local_registry.h"
#include "tests/testing/test_env.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;
using testing::TempDir;
namespace res = client::resources;

class ImagePullPodsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KELPIE_REQUIRE_PRIVILEGES();
    std::random_device rd;
    int octet = static_cast<int>(rd() % 200) + 20;
    suffix_ = absl::StrCat(rd() % 100000);
    bridge_ = absl::StrCat("ki", suffix_);
    node_ = absl::StrCat("ip-node-", suffix_);
    auto registry = testing::LocalRegistry::Start(registry_dir_.path());
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = std::move(*registry);
    auto pushed = registry_->PushBusybox("apps/busybox", "1.0");
    ASSERT_TRUE(pushed.ok()) << pushed.status();

    auto server = testing::KelpieServer::Start(dir_.File("server"), testing::FreeTcpPort(), dir_.File("server.log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto http = server_->AdminClient();
    ASSERT_TRUE(http.ok()) << http.status();
    client_ = std::make_unique<client::RestClient>(std::move(*http));
    auto events_http = server_->AdminClient();
    ASSERT_TRUE(events_http.ok()) << events_http.status();
    events_client_ = std::make_unique<client::RestClient>(std::move(*events_http));

    rt_options_.state_dir = dir_.File("state");
    rt_options_.log_dir = dir_.File("logs");
    rt_options_.shim_command = {testing::KelpieBinary(), "runtime-shim"};
    rt_options_.cgroup_parent = absl::StrCat("/kelpie-ip-", suffix_, ".slice");
    rt_options_.cni.bridge = bridge_;
    rt_options_.cni.network_name = absl::StrCat("kelpie-ip-", suffix_);
    rt_options_.cni.pod_cidr = absl::StrCat("10.42.", octet, ".0/24");
    auto images = image::ImageStore::Open(dir_.File("data"));
    ASSERT_TRUE(images.ok()) << images.status();
    images_ = std::move(*images);
    auto rt = runtime::RuncPodRuntime::Create(rt_options_, *images_);
    ASSERT_TRUE(rt.ok()) << rt.status();
    runtime_ = std::move(*rt);

    image::ImagePullerOptions pull_options;
    pull_options.insecure_registries = {registry_->host()};
    puller_ = std::make_unique<image::ImagePuller>(*images_, pull_options);
    controllers::EventRecorderOptions eo;
    eo.component = "kubelet";
    eo.host = node_;
    events_ = std::make_unique<controllers::RestEventRecorder>(*events_client_, eo);
    ImagePullManagerOptions mo;
    mo.backoff_initial = std::chrono::seconds(3);
    mo.backoff_max = std::chrono::seconds(6);

    options_.node_name = node_;
    options_.node_ip = "127.0.0.1";
    options_.pods_dir = dir_.File("pods");
    options_.node_cpu_millis = 2000;
    options_.node_memory_bytes = int64_t{4} << 30;
    // Slow syncs keep each waiting reason on the pod long enough to be seen.
    options_.poll_interval = std::chrono::milliseconds(1500);
    options_.image_pulls = std::make_shared<ImagePullManager>(*images_, puller_.get(), events_.get(), mo);
    manager_ = std::make_unique<PodManager>(options_, *client_, *runtime_, images_.get());
    manager_->Start();
    ASSERT_TRUE(manager_->WaitForSync(std::chrono::seconds(30)));
  }

  void TearDown() override {
    if (manager_) manager_->Stop();
    manager_.reset();
    if (events_) events_->Stop();
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

  json Pod(const std::string& name, const std::string& image, const std::string& policy) {
    json c = {{"name", "app"}, {"image", image}, {"command", {"sleep", "3600"}}};
    if (!policy.empty()) c["imagePullPolicy"] = policy;
    return {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"name", name}, {"namespace", "default"}}},
            {"spec", {{"nodeName", node_}, {"terminationGracePeriodSeconds", 1}, {"containers", {c}}}}};
  }

  // The waiting reasons the pod's container shows, in order of first sight,
  // until `until` is among them (or the time is up).
  std::vector<std::string> WatchReasons(const std::string& name, const std::string& until, int seconds = 60) {
    std::vector<std::string> seen;
    for (int i = 0; i < seconds * 10; ++i) {
      auto pod = client_->Get(res::kPods, "default", name);
      if (pod.ok() && pod->contains("status")) {
        for (const auto& cs : (*pod)["status"].value("containerStatuses", json::array())) {
          std::string reason = cs["state"].contains("waiting") ? cs["state"]["waiting"].value("reason", "")
                               : cs["state"].contains("running") ? "Running"
                                                                 : "";
          if (!reason.empty() && (seen.empty() || seen.back() != reason)) seen.push_back(reason);
        }
      }
      if (std::find(seen.begin(), seen.end(), until) != seen.end()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return seen;
  }

  json WaitingState(const std::string& name) {
    auto pod = client_->Get(res::kPods, "default", name);
    if (!pod.ok() || !pod->contains("status")) return json::object();
    for (const auto& cs : (*pod)["status"].value("containerStatuses", json::array())) {
      if (cs["state"].contains("waiting")) return cs["state"]["waiting"];
    }
    return json::object();
  }

  // Reasons of the Events about pod `name`.
  std::set<std::string> EventReasons(const std::string& name) {
    std::set<std::string> reasons;
    for (int i = 0; i < 50; ++i) {
      events_->Flush(std::chrono::seconds(2));
      auto list = client_->List(res::kEvents, "default");
      if (list.ok()) {
        for (const auto& e : (*list).value("items", json::array())) {
          if (e["involvedObject"].value("name", "") == name) reasons.insert(e.value("reason", ""));
        }
      }
      if (!reasons.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return reasons;
  }

  TempDir dir_;
  TempDir registry_dir_;
  std::string suffix_, bridge_, node_;
  std::unique_ptr<testing::LocalRegistry> registry_;
  std::unique_ptr<testing::KelpieServer> server_;
  std::unique_ptr<client::RestClient> client_, events_client_;
  runtime::RuncRuntimeOptions rt_options_;
  std::unique_ptr<image::ImageStore> images_;
  std::unique_ptr<runtime::RuncPodRuntime> runtime_;
  std::unique_ptr<image::ImagePuller> puller_;
  std::unique_ptr<controllers::RestEventRecorder> events_;
  PodWorkerOptions options_;
  std::unique_ptr<PodManager> manager_;
};

TEST_F(ImagePullPodsTest, ImageOnlyInRegistryIsPulledAndRuns) {
  const std::string image = registry_->host() + "/apps/busybox:1.0";
  ASSERT_FALSE(images_->Get(image).ok());
  ASSERT_TRUE(client_->Create(res::kPods, "default", Pod("pulled", image, "IfNotPresent")).ok());
  std::vector<std::string> reasons = WatchReasons("pulled", "Running", 120);
  ASSERT_FALSE(reasons.empty());
  EXPECT_EQ(reasons.back(), "Running") << absl::StrJoin(reasons, ",");
  EXPECT_TRUE(images_->Get(image).ok());
  std::set<std::string> events = EventReasons("pulled");
  EXPECT_TRUE(events.count("Pulling")) << absl::StrJoin(events, ",");
  EXPECT_TRUE(events.count("Pulled")) << absl::StrJoin(events, ",");
}

TEST_F(ImagePullPodsTest, MissingImageGoesErrImagePullThenImagePullBackOff) {
  // Unset policy with ":latest" is Always; IfNotPresent pulls too when absent.
  for (const auto& [name, policy] : std::vector<std::pair<std::string, std::string>>{
           {"missing-always", ""}, {"missing-ifnotpresent", "IfNotPresent"}}) {
    SCOPED_TRACE(name);
    std::string image = registry_->host() + "/apps/nothing-here" + (policy.empty() ? "" : ":2");
    ASSERT_TRUE(client_->Create(res::kPods, "default", Pod(name, image, policy)).ok());
    std::vector<std::string> reasons = WatchReasons(name, "ImagePullBackOff");
    std::string joined = absl::StrJoin(reasons, ",");
    auto err = std::find(reasons.begin(), reasons.end(), "ErrImagePull");
    auto backoff = std::find(reasons.begin(), reasons.end(), "ImagePullBackOff");
    ASSERT_NE(err, reasons.end()) << joined;
    ASSERT_NE(backoff, reasons.end()) << joined;
    EXPECT_LT(err - reasons.begin(), backoff - reasons.begin()) << joined;
    json waiting = WaitingState(name);
    EXPECT_TRUE(absl::StrContains(waiting.value("message", ""), "nothing-here")) << waiting.dump();
    // After the backoff the pull is tried again: ErrImagePull shows again.
    std::vector<std::string> again = WatchReasons(name, "ErrImagePull", 30);
    EXPECT_NE(std::find(again.begin(), again.end(), "ErrImagePull"), again.end()) << absl::StrJoin(again, ",");
    std::set<std::string> events = EventReasons(name);
    EXPECT_TRUE(events.count("Pulling")) << absl::StrJoin(events, ",");
    EXPECT_TRUE(events.count("Failed")) << absl::StrJoin(events, ",");
  }
  // BackOff events are written once a backoff starts.
  std::set<std::string> events = EventReasons("missing-always");
  EXPECT_TRUE(events.count("BackOff")) << absl::StrJoin(events, ",");
}

TEST_F(ImagePullPodsTest, NeverDoesNotPull) {
  const std::string image = registry_->host() + "/apps/busybox:1.0";
  ASSERT_TRUE(client_->Create(res::kPods, "default", Pod("never", image, "Never")).ok());
  std::vector<std::string> reasons = WatchReasons("never", "ErrImageNeverPull");
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "ErrImageNeverPull"), reasons.end())
      << absl::StrJoin(reasons, ",");
  EXPECT_FALSE(images_->Get(image).ok());
  // Once the image is in the store, the same pod runs without a pull.
  ASSERT_TRUE(puller_->Pull(image).ok());
  std::vector<std::string> later = WatchReasons("never", "Running", 60);
  EXPECT_EQ(later.empty() ? "" : later.back(), "Running") << absl::StrJoin(later, ",");
}

}  // namespace
}  // namespace kelpie::kubelet
