// The fixture the workload controller integration tests share: a real
// `kelpie server` (without its own controller manager and scheduler), the
// workload controllers run in-process with fake nodes
// (tests/testing/fake_nodes.h) standing in for the scheduler and kubelets,
// and an in-memory event recorder.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/informer_factory.h"
#include "orchestrator/controllers/shared_informer.h"
#include "orchestrator/controllers/workloads/workload_controllers.h"
#include "orchestrator/controllers/workloads/workload_util.h"
#include "tests/testing/fake_nodes.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie::controllers::workloads {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace res = client::resources;

template <typename F>
bool Eventually(F f, std::chrono::milliseconds limit = 60s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return f();
}

// Stands in for the controller manager's RestEventRecorder: keeps the
// events in memory so tests can check what the controllers reported.
class RecordingEventRecorder : public EventRecorder {
 public:
  struct Recorded {
    std::string object;  // kind/name
    std::string reason;
    std::string message;
  };
  void Event(const json& involved, EventType, const std::string& reason, const std::string& message) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back({involved.value("kind", "") + "/" + StringAt(involved, "/metadata/name"), reason, message});
  }
  std::vector<Recorded> With(const std::string& reason) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Recorded> out;
    for (const auto& e : events_) {
      if (e.reason == reason) out.push_back(e);
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Recorded> events_;
};

json PodTemplate(const std::string& app, const std::string& image) {
  return {{"metadata", {{"labels", {{"app", app}}}}},
          {"spec", {{"containers", json::array({{{"name", "c"}, {"image", image}}})}}}};
}

class WorkloadControllersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The controllers under test run in this process and the fake nodes
    // bind pods: the server runs neither its controller manager nor its
    // scheduler.
    auto s = testing::KelpieServer::Start(dir_.File("data"), testing::FreeTcpPort(), dir_.File("server.log"),
                                          {"--controller-manager=false", "--scheduler=false"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    auto c = client::RestClient::FromKubeconfig(server_->kubeconfig());
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }

  void StartControllers(testing::FakeNodesOptions fake_options = {}, int nodes = 2) {
    fake_ = std::make_unique<testing::FakeNodes>(*client_, std::move(fake_options));
    for (int i = 0; i < nodes; ++i) ASSERT_TRUE(fake_->AddNode(absl::StrCat("node-", i)).ok());
    ASSERT_TRUE(fake_->Start().ok());
    factory_ = std::make_unique<SharedInformerFactory>(*client_);
    ctx_ = std::make_unique<ControllerContext>(ControllerContext{*client_, *factory_, recorder_, RealClock::Get()});
    controllers_ = NewWorkloadControllers(*ctx_);
    factory_->Start();
    ASSERT_TRUE(factory_->WaitForSync(30s));
    for (auto& c : controllers_) c->Run(2);
  }

  void TearDown() override {
    for (auto& c : controllers_) c->Stop();
    if (factory_) factory_->Stop();
    if (fake_) fake_->Stop();
  }

  json Get(const client::ResourceRef& ref, const std::string& name) {
    auto r = client_->Get(ref, "default", name);
    return r.ok() ? *r : json();
  }

  std::vector<json> ActivePods(const std::string& app) {
    auto list = client_->ListAll(res::kPods, "default", {.label_selector = "app=" + app});
    std::vector<json> out;
    if (!list.ok()) return out;
    for (const json& p : (*list)["items"]) {
      if (IsPodActive(p)) out.push_back(p);
    }
    return out;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::KelpieServer> server_;
  std::unique_ptr<client::RestClient> client_;
  std::unique_ptr<testing::FakeNodes> fake_;
  RecordingEventRecorder recorder_;
  std::unique_ptr<SharedInformerFactory> factory_;
  std::unique_ptr<ControllerContext> ctx_;
  std::vector<std::unique_ptr<Controller>> controllers_;
};

}  // namespace
}  // namespace kelpie::controllers::workloads
