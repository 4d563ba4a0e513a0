// RestClient, SharedInformer and LeaderElector against a real `kelpie server`.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "orchestrator/client/api_errors.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/leader_elector.h"
#include "orchestrator/controllers/shared_informer.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie::controllers {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace res = client::resources;

json ConfigMap(const std::string& name, const std::string& value) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"labels", {{"app", "demo"}}}}},
          {"data", {{"v", value}}}};
}

template <typename F>
bool Eventually(F f, std::chrono::milliseconds limit = 30s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return f();
}

class FrameworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = testing::FreeTcpPort();
    Start();
  }
  void Start() {
    auto s = testing::KelpieServer::Start(dir_.File("data"), port_, dir_.File("server.log"));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    // The client survives restarts (same port, reused PKI): informers hold it.
    if (client_) return;
    auto c = client::RestClient::FromKubeconfig(server_->kubeconfig());
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }
  testing::TempDir dir_;
  int port_ = 0;
  std::unique_ptr<testing::KelpieServer> server_;
  std::unique_ptr<client::RestClient> client_;
};

TEST_F(FrameworkTest, RestClientCrudAndErrors) {
  auto created = client_->Create(res::kConfigMaps, "default", ConfigMap("a", "1"));
  ASSERT_TRUE(created.ok()) << created.status();
  auto again = client_->Create(res::kConfigMaps, "default", ConfigMap("a", "1"));
  EXPECT_TRUE(client::IsAlreadyExists(again.status())) << again.status();
  auto missing = client_->Get(res::kConfigMaps, "default", "nope");
  EXPECT_TRUE(client::IsNotFound(missing.status())) << missing.status();

  json stale = *created;
  json updated = *created;
  updated["data"]["v"] = "2";
  ASSERT_TRUE(client_->Update(res::kConfigMaps, "default", updated).ok());
  stale["data"]["v"] = "3";
  auto conflict = client_->Update(res::kConfigMaps, "default", stale);
  EXPECT_TRUE(client::IsConflict(conflict.status())) << conflict.status();

  auto patched = client_->Patch(res::kConfigMaps, "default", "a", client::PatchType::kMerge, json{{"data", {{"w", "x"}}}});
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["data"]["w"], "x");
  EXPECT_EQ((*patched)["data"]["v"], "2");

  for (int i = 0; i < 5; ++i) ASSERT_TRUE(client_->Create(res::kConfigMaps, "default", ConfigMap("p" + std::to_string(i), "x")).ok());
  client::ListOptions lo;
  lo.label_selector = "app=demo";
  lo.limit = 2;
  auto page = client_->List(res::kConfigMaps, "default", lo);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ((*page)["items"].size(), 2u);
  auto all = client_->ListAll(res::kConfigMaps, "default", lo);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ((*all)["items"].size(), 6u);

  client::DeleteOptions d;
  d.precondition_uid = "wrong-uid";
  auto pre = client_->Delete(res::kConfigMaps, "default", "a", d);
  EXPECT_TRUE(client::IsConflict(pre.status())) << pre.status();
  ASSERT_TRUE(client_->Delete(res::kConfigMaps, "default", "a").ok());
  EXPECT_TRUE(client::IsNotFound(client_->Get(res::kConfigMaps, "default", "a").status()));
}

TEST_F(FrameworkTest, InformerSeesChangesAndRelistsAfterServerRestart) {
  ASSERT_TRUE(client_->Create(res::kConfigMaps, "default", ConfigMap("before", "1")).ok());
  auto informer = std::make_unique<SharedInformer>(*client_, InformerOptions{.resource = res::kConfigMaps, .ns = "default"});
  std::mutex mu;
  std::vector<std::string> log;
  EventHandlers h;
  h.on_add = [&](const json& o) {
    std::lock_guard<std::mutex> l(mu);
    log.push_back("add " + ObjectKey(o));
  };
  h.on_update = [&](const json&, const json& o) {
    std::lock_guard<std::mutex> l(mu);
    log.push_back("update " + ObjectKey(o) + " " + o["data"].value("v", ""));
  };
  h.on_delete = [&](const json& o, bool unknown) {
    std::lock_guard<std::mutex> l(mu);
    log.push_back(std::string(unknown ? "tombstone " : "delete ") + ObjectKey(o));
  };
  informer->AddEventHandler(h);
  informer->Start();
  ASSERT_TRUE(informer->WaitForSync(30s));
  EXPECT_TRUE(informer->store().Get("default/before").has_value());
  auto seen = [&](const std::string& entry) {
    return Eventually([&] {
      std::lock_guard<std::mutex> l(mu);
      return std::find(log.begin(), log.end(), entry) != log.end();
    });
  };
  EXPECT_TRUE(seen("add default/before"));

  ASSERT_TRUE(client_->Create(res::kConfigMaps, "default", ConfigMap("x", "1")).ok());
  EXPECT_TRUE(seen("add default/x"));
  ASSERT_TRUE(client_->Patch(res::kConfigMaps, "default", "x", client::PatchType::kMerge, json{{"data", {{"v", "2"}}}}).ok());
  EXPECT_TRUE(seen("update default/x 2"));
  ASSERT_TRUE(client_->Delete(res::kConfigMaps, "default", "x").ok());
  EXPECT_TRUE(seen("delete default/x"));

  // Restart the server; while it is down nothing is delivered. After it is
  // back, a delete and an add made behind the informer's back arrive
  // through the relist / rewatch.
  server_->process().Signal(SIGTERM);
  ASSERT_TRUE(server_->process().Wait(30s).has_value());
  server_.reset();
  Start();
  ASSERT_TRUE(client_->Delete(res::kConfigMaps, "default", "before").ok());
  ASSERT_TRUE(client_->Create(res::kConfigMaps, "default", ConfigMap("after", "1")).ok());
  EXPECT_TRUE(Eventually([&] { return informer->store().Get("default/after").has_value(); }, 60s));
  EXPECT_TRUE(Eventually([&] { return !informer->store().Get("default/before").has_value(); }, 60s));
  EXPECT_GE(informer->ListCount(), 2) << "a transport failure leads to a relist";
  informer->Stop();
}

TEST_F(FrameworkTest, LeaderElectionHandsOverWhenTheLeaderStops) {
  auto client2 = client::RestClient::FromKubeconfig(server_->kubeconfig());
  ASSERT_TRUE(client2.ok());
  std::atomic<int> a_started{0}, a_stopped{0}, b_started{0};
  auto config = [](const std::string& id) {
    LeaderElectionConfig c;
    c.lease_namespace = "default";
    c.lease_name = "controllers-test";
    c.identity = id;
    c.lease_duration = 3s;
    c.renew_deadline = 2s;
    c.retry_period = 200ms;
    return c;
  };
  auto ca = config("a");
  ca.on_started_leading = [&] { a_started++; };
  ca.on_stopped_leading = [&] { a_stopped++; };
  auto cb = config("b");
  cb.on_started_leading = [&] { b_started++; };
  LeaderElector a(*client_, ca);
  a.Start();
  ASSERT_TRUE(Eventually([&] { return a.IsLeader(); }));
  LeaderElector b(**client2, cb);
  b.Start();
  ASSERT_TRUE(Eventually([&] { return b.ObservedHolder() == "a"; }));
  std::this_thread::sleep_for(1s);
  EXPECT_FALSE(b.IsLeader()) << "only one leader while a renews";
  a.Stop();
  EXPECT_EQ(a_stopped.load(), 1);
  ASSERT_TRUE(Eventually([&] { return b.IsLeader(); }));
  EXPECT_EQ(b_started.load(), 1);
  auto lease = client_->Get(res::kLeases, "default", "controllers-test");
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], "b");
  b.Stop();
}

}  // namespace
}  // namespace kelpie::controllers
