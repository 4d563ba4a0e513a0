// The kubelet's image pull step with a simulated clock and a scripted
// registry: Kubernetes' default pull policies, Never and IfNotPresent
// against the store, ErrImagePull then ImagePullBackOff with the backoff
// doubling from 10 s to its 5 min cap, credentials from imagePullSecrets,
// and the events a pull records.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "common/base64.h"
#include "orchestrator/controllers/event_recorder.h"
#include "orchestrator/kubelet/image_pull_manager.h"
#include "orchestrator/runtime/image/image_puller.h"
#include "orchestrator/runtime/image/image_store.h"
#include "tests/testing/busybox_image.h"
#include "tests/testing/test_env.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Every manifest is unknown; records the requests and their credentials.
struct NotFoundTransport : image::RegistryTransport {
  std::vector<image::RegistryHttpRequest>* requests;
  explicit NotFoundTransport(std::vector<image::RegistryHttpRequest>* r) : requests(r) {}
  absl::StatusOr<image::RegistryHttpResponse> Send(const image::RegistryHttpRequest& request,
                                                   const std::function<absl::Status(absl::string_view)>*) override {
    requests->push_back(request);
    image::RegistryHttpResponse r;
    if (request.basic_user.empty()) {
      r.status = 401;
      r.headers.emplace_back("www-authenticate", R"(Basic realm="test")");
      return r;
    }
    r.status = 404;
    r.body = R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})";
    return r;
  }
};

struct RecordedEvent {
  bool warning;
  std::string reason, message, field_path;
};
struct FakeEvents : controllers::EventRecorder {
  std::vector<RecordedEvent> events;
  void Event(const json& involved, controllers::EventType type, const std::string& reason,
             const std::string& message) override {
    events.push_back({type == controllers::EventType::kWarning, reason, message, involved.value("fieldPath", "")});
  }
};

struct FakePodApi : PodApi {
  std::map<std::string, json> secrets;
  absl::StatusOr<json> GetConfigMap(const std::string&, const std::string&) override {
    return absl::NotFoundError("none");
  }
  absl::StatusOr<json> GetSecret(const std::string&, const std::string& name) override {
    auto it = secrets.find(name);
    if (it == secrets.end()) return absl::NotFoundError("secret not found");
    return it->second;
  }
  absl::StatusOr<json> ListServices(const std::string&) override { return json::array(); }
  absl::StatusOr<json> GetService(const std::string&, const std::string&) override {
    return absl::NotFoundError("none");
  }
  absl::StatusOr<json> RequestToken(const std::string&, const std::string&, const json&) override {
    return absl::UnimplementedError("no tokens");
  }
  absl::Status PatchPodStatus(const std::string&, const std::string&, const json&) override {
    return absl::OkStatus();
  }
  absl::Status DeletePodNow(const std::string&, const std::string&, const std::string&) override {
    return absl::OkStatus();
  }
};

TEST(EffectivePullPolicyTest, KubernetesDefaults) {
  EXPECT_EQ(EffectivePullPolicy({{"image", "busybox"}}), "Always");
  EXPECT_EQ(EffectivePullPolicy({{"image", "busybox:latest"}}), "Always");
  EXPECT_EQ(EffectivePullPolicy({{"image", "busybox:1.36"}}), "IfNotPresent");
  EXPECT_EQ(EffectivePullPolicy({{"image", "busybox@sha256:" + std::string(64, 'a')}}), "IfNotPresent");
  EXPECT_EQ(EffectivePullPolicy({{"image", "localhost:5000/app"}}), "Always");
  EXPECT_EQ(EffectivePullPolicy({{"image", "busybox:1.36"}, {"imagePullPolicy", "Always"}}), "Always");
  EXPECT_EQ(EffectivePullPolicy({{"image", "busybox"}, {"imagePullPolicy", "Never"}}), "Never");
}

class ImagePullManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = image::ImageStore::Open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto archive = testing::BuildBusyboxImage(dir_.path(), "reg.example/tools/busybox:1.0");
    ASSERT_TRUE(archive.ok()) << archive.status();
    ASSERT_TRUE(store_->Import(*archive).ok());
    puller_ = std::make_unique<image::ImagePuller>(*store_, image::ImagePullerOptions{}, [this](bool) {
      return std::make_unique<NotFoundTransport>(&requests_);
    });
    manager_ = std::make_unique<ImagePullManager>(*store_, puller_.get(), &events_, ImagePullManagerOptions{},
                                                  [this] { return now_; });
    pod_ = {{"metadata", {{"name", "p"}, {"namespace", "default"}, {"uid", "u1"}}},
            {"spec", {{"imagePullSecrets", {{{"name", "regcred"}}}}}}};
    std::string config = json{{"auths", {{"reg.example", {{"username", "bob"}, {"password", "pw"}}}}}}.dump();
    api_.secrets["regcred"] = {{"type", "kubernetes.io/dockerconfigjson"},
                               {"data", {{".dockerconfigjson", Base64Encode(config)}}}};
  }

  ImageCheck Ensure(const json& container) { return manager_->EnsureImage(pod_, container, backoff_, api_); }

  testing::TempDir dir_;
  std::unique_ptr<image::ImageStore> store_;
  std::vector<image::RegistryHttpRequest> requests_;
  std::unique_ptr<image::ImagePuller> puller_;
  FakeEvents events_;
  FakePodApi api_;
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1)};
  std::unique_ptr<ImagePullManager> manager_;
  ImagePullBackoff backoff_;
  json pod_;
};

TEST_F(ImagePullManagerTest, PresentImagesAndNever) {
  json present = {{"name", "c"}, {"image", "reg.example/tools/busybox:1.0"}};
  EXPECT_TRUE(Ensure(present).ready);
  present["imagePullPolicy"] = "Never";
  EXPECT_TRUE(Ensure(present).ready);
  json absent = {{"name", "c"}, {"image", "reg.example/tools/other:1.0"}, {"imagePullPolicy", "Never"}};
  ImageCheck never = Ensure(absent);
  EXPECT_FALSE(never.ready);
  EXPECT_EQ(never.reason, "ErrImageNeverPull");
  EXPECT_TRUE(requests_.empty());
  ImageCheck invalid = Ensure({{"name", "c"}, {"image", "Not/Valid"}});
  EXPECT_EQ(invalid.reason, "InvalidImageName");
}

TEST_F(ImagePullManagerTest, FailedPullsBackOffExponentiallyUpToFiveMinutes) {
  json c = {{"name", "app"}, {"image", "reg.example/tools/missing:1.0"}};
  ImageCheck first = Ensure(c);
  EXPECT_FALSE(first.ready);
  EXPECT_EQ(first.reason, "ErrImagePull");
  EXPECT_TRUE(absl::StrContains(first.message, "manifest unknown")) << first.message;
  // The pull secret's credentials answered the registry's basic challenge.
  ASSERT_EQ(requests_.size(), 2u);
  EXPECT_EQ(requests_[1].basic_user, "bob");
  EXPECT_EQ(requests_[1].basic_password, "pw");

  // Shown as ErrImagePull for half the 10 s backoff, then ImagePullBackOff, no pull meanwhile.
  now_ += 4s;
  EXPECT_EQ(Ensure(c).reason, "ErrImagePull");
  now_ += 2s;
  ImageCheck waiting = Ensure(c);
  EXPECT_EQ(waiting.reason, "ImagePullBackOff");
  EXPECT_TRUE(absl::StrContains(waiting.message, "Back-off pulling image")) << waiting.message;
  EXPECT_EQ(requests_.size(), 2u);

  // Next tries after 10 s, 20 s, 40 s, ... capped at 300 s.
  std::vector<int64_t> delays;
  now_ += 4s;  // 10 s after the failure
  for (int i = 0; i < 8; ++i) {
    size_t before = requests_.size();
    EXPECT_EQ(Ensure(c).reason, "ErrImagePull");
    EXPECT_GT(requests_.size(), before);
    delays.push_back(std::chrono::duration_cast<std::chrono::seconds>(backoff_.delay).count());
    now_ += backoff_.delay - 1s;
    EXPECT_EQ(Ensure(c).reason, "ImagePullBackOff");
    EXPECT_EQ(requests_.size(), before + 2);  // no pull while backing off
    now_ += 1s;
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{20, 40, 80, 160, 300, 300, 300, 300}));

  std::vector<std::string> reasons;
  for (const auto& e : events_.events) reasons.push_back(e.reason);
  ASSERT_GE(reasons.size(), 4u);
  EXPECT_EQ(reasons[0], "Pulling");
  EXPECT_EQ(reasons[1], "Failed");
  EXPECT_TRUE(events_.events[1].warning);
  EXPECT_EQ(events_.events[0].field_path, "spec.containers{app}");
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "BackOff"), reasons.end());
}

TEST_F(ImagePullManagerTest, AlwaysPullsEvenWhenPresent) {
  json c = {{"name", "c"}, {"image", "reg.example/tools/busybox:1.0"}, {"imagePullPolicy", "Always"}};
  ImageCheck check = Ensure(c);
  EXPECT_FALSE(check.ready);  // the registry does not have it: Always means the pull must succeed
  EXPECT_EQ(check.reason, "ErrImagePull");
  EXPECT_FALSE(requests_.empty());
}

}  // namespace
}  // namespace kelpie::kubelet
