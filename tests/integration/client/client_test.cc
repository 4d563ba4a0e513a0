// The REST client and the informer against a real `kelpie server`.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "orchestrator/client/informer.h"
#include "orchestrator/client/kubeconfig.h"
#include "orchestrator/client/rest_client.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie::client {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

json ConfigMap(const std::string& name, const std::string& value) {
  return {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}}, {"data", {{"v", value}}}};
}

const ResourceRef kConfigMaps{"", "v1", "configmaps", true};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = kelpie::testing::FreeTcpPort();
    StartServer(port_, "server.log");
    auto kc = LoadKubeconfig(server_->kubeconfig());
    ASSERT_TRUE(kc.ok()) << kc.status();
    kubeconfig_ = *kc;
    auto c = RestClient::Create(ClientOptionsFromKubeconfig(kubeconfig_));
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }
  void StartServer(int port, const std::string& log) {
    auto s = kelpie::testing::KelpieServer::Start(dir_.File("data"), port, dir_.File(log));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }

  kelpie::testing::TempDir dir_;
  int port_ = 0;
  std::unique_ptr<kelpie::testing::KelpieServer> server_;
  KubeconfigContents kubeconfig_;
  std::unique_ptr<RestClient> client_;
};

TEST_F(ClientTest, CrudAndStatusCodes) {
  auto created = client_->Create(kConfigMaps, "default", ConfigMap("a", "1"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE((*created)["metadata"].value("uid", "").empty());
  EXPECT_TRUE(absl::IsAlreadyExists(client_->Create(kConfigMaps, "default", ConfigMap("a", "1")).status()));
  EXPECT_TRUE(absl::IsNotFound(client_->Get(kConfigMaps, "default", "missing").status()));

  json stale = *created;
  json fresh = *created;
  fresh["data"]["v"] = "2";
  ASSERT_TRUE(client_->Update(kConfigMaps, fresh).ok());
  stale["data"]["v"] = "3";
  EXPECT_TRUE(IsConflict(client_->Update(kConfigMaps, stale).status()));

  auto patched = client_->Patch(kConfigMaps, "default", "a", PatchType::kMerge, {{"data", {{"w", "x"}}}});
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["data"]["w"], "x");

  for (int i = 0; i < 7; ++i) ASSERT_TRUE(client_->Create(kConfigMaps, "default", ConfigMap("p" + std::to_string(i), "x")).ok());
  ListOptions lo;
  lo.limit = 3;
  auto all = client_->ListAll(kConfigMaps, "default", lo);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ((*all)["items"].size(), 8u);
  EXPECT_FALSE((*all)["metadata"].contains("continue"));

  lo = {};
  lo.field_selector = "metadata.name=p3";
  auto one = client_->List(kConfigMaps, "default", lo);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ((*one)["items"].size(), 1u);

  ASSERT_TRUE(client_->Delete(kConfigMaps, "default", "a").ok());
  EXPECT_TRUE(absl::IsNotFound(client_->Delete(kConfigMaps, "default", "a").status()));
}

// Records what an informer's handlers saw.
struct Seen {
  std::mutex mu;
  std::vector<std::string> events;
  void Add(const std::string& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  }
  bool WaitFor(const std::string& e, std::chrono::milliseconds timeout = 20s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lock(mu);
        if (std::find(events.begin(), events.end(), e) != events.end()) return true;
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
};

InformerHandlers Record(Seen& seen) {
  return {[&seen](const json& o) { seen.Add("add " + Informer::KeyOf(o)); },
          [&seen](const json&, const json& o) { seen.Add("update " + Informer::KeyOf(o) + " " + o["data"].value("v", "")); },
          [&seen](const json& o) { seen.Add("delete " + Informer::KeyOf(o)); },
          nullptr};
}

TEST_F(ClientTest, InformerFollowsAddsUpdatesAndDeletesAndStopsPromptly) {
  ASSERT_TRUE(client_->Create(kConfigMaps, "default", ConfigMap("before", "1")).ok());
  auto informer_client = RestClient::Create(ClientOptionsFromKubeconfig(kubeconfig_));
  ASSERT_TRUE(informer_client.ok());
  Seen seen;
  InformerOptions io;
  io.name_space = "default";
  Informer informer(**informer_client, kConfigMaps, io);
  informer.AddHandlers(Record(seen));
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(20s));
  EXPECT_TRUE(seen.WaitFor("add default/before"));
  ASSERT_TRUE(client_->Create(kConfigMaps, "default", ConfigMap("later", "1")).ok());
  EXPECT_TRUE(seen.WaitFor("add default/later"));
  ASSERT_TRUE(client_->Patch(kConfigMaps, "default", "later", PatchType::kMerge, {{"data", {{"v", "2"}}}}).ok());
  EXPECT_TRUE(seen.WaitFor("update default/later 2"));
  ASSERT_TRUE(client_->Delete(kConfigMaps, "default", "before").ok());
  EXPECT_TRUE(seen.WaitFor("delete default/before"));
  EXPECT_FALSE(informer.Get("default/before").has_value());
  ASSERT_TRUE(informer.Get("default/later").has_value());
  EXPECT_EQ((*informer.Get("default/later"))["data"]["v"], "2");

  auto start = std::chrono::steady_clock::now();
  informer.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_F(ClientTest, InformerRelistsAfterTheServerWasAwayAndReportsWhatChanged) {
  ASSERT_TRUE(client_->Create(kConfigMaps, "default", ConfigMap("stays", "1")).ok());
  ASSERT_TRUE(client_->Create(kConfigMaps, "default", ConfigMap("goes", "1")).ok());
  auto informer_client = RestClient::Create(ClientOptionsFromKubeconfig(kubeconfig_));
  ASSERT_TRUE(informer_client.ok());
  Seen seen;
  InformerOptions io;
  io.name_space = "default";
  Informer informer(**informer_client, kConfigMaps, io);
  informer.AddHandlers(Record(seen));
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(20s));

  // While the informer's server is down, another server on the same data
  // (another port, which the informer does not know) changes things.
  server_.reset();
  int other_port = kelpie::testing::FreeTcpPort();
  while (other_port == port_) other_port = kelpie::testing::FreeTcpPort();
  StartServer(other_port, "other.log");
  auto other = RestClient::Create(ClientOptionsFromKubeconfig(*LoadKubeconfig(server_->kubeconfig())));
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Delete(kConfigMaps, "default", "goes").ok());
  ASSERT_TRUE((*other)->Patch(kConfigMaps, "default", "stays", PatchType::kMerge, {{"data", {{"v", "9"}}}}).ok());
  ASSERT_TRUE((*other)->Create(kConfigMaps, "default", ConfigMap("new", "1")).ok());
  server_.reset();
  StartServer(port_, "again.log");

  EXPECT_TRUE(seen.WaitFor("delete default/goes"));
  EXPECT_TRUE(seen.WaitFor("update default/stays 9"));
  EXPECT_TRUE(seen.WaitFor("add default/new"));
  informer.Stop();
}

}  // namespace
}  // namespace kelpie::client
