// The server's store flags and the factory behind them.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>

#include "orchestrator/store/store_options.h"
#include "tests/testing/test_env.h"
#include "tests/unit/store/etcd_process.h"

namespace kelpie::store {
namespace {

absl::Status Parse(StoreOptions& options, std::vector<std::string> args) {
  CLI::App app("test");
  AddStoreFlags(app, options);
  std::reverse(args.begin(), args.end());  // CLI11 takes them last-first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  return absl::OkStatus();
}

TEST(StoreOptionsTest, DefaultsToTheEmbeddedStoreWithFiveMinuteCompaction) {
  StoreOptions options;
  ASSERT_TRUE(Parse(options, {}).ok());
  EXPECT_EQ(options.backend, "embedded");
  EXPECT_EQ(options.compaction_interval, std::chrono::seconds(300));
}

TEST(StoreOptionsTest, ParsesEtcdFlags) {
  StoreOptions options;
  ASSERT_TRUE(Parse(options, {"--store=etcd", "--etcd-endpoints=https://a:2379,https://b:2379",
                              "--etcd-cafile=/ca.pem", "--etcd-certfile=/c.pem",
                              "--etcd-keyfile=/k.pem", "--compaction-interval=60"})
                  .ok());
  EXPECT_EQ(options.backend, "etcd");
  EXPECT_EQ(options.etcd_endpoints, (std::vector<std::string>{"https://a:2379", "https://b:2379"}));
  EXPECT_EQ(options.etcd_ca_file, "/ca.pem");
  EXPECT_EQ(options.etcd_cert_file, "/c.pem");
  EXPECT_EQ(options.etcd_key_file, "/k.pem");
  EXPECT_EQ(options.compaction_interval, std::chrono::seconds(60));
}

TEST(StoreOptionsTest, RejectsUnknownBackendsAndNegativeIntervals) {
  StoreOptions options;
  EXPECT_FALSE(Parse(options, {"--store=mysql"}).ok());
  EXPECT_FALSE(Parse(options, {"--compaction-interval=-5"}).ok());
}

TEST(StoreOptionsTest, EtcdWithoutEndpointsIsAClearError) {
  StoreOptions options;
  options.backend = "etcd";
  auto store = OpenStore(options);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(std::string(store.status().message()).find("--etcd-endpoints"), std::string::npos);
}

TEST(StoreOptionsTest, OpensTheEmbeddedStoreInTheDataDirectory) {
  kelpie::testing::TempDir dir;
  StoreOptions options;
  options.data_dir = dir.File("store");
  auto store = OpenStore(options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Put("/k", "v").ok());
  EXPECT_EQ((*store)->Get("/k")->value_view(), "v");
}

TEST(StoreOptionsTest, UnreachableEtcdIsAnErrorNamingTheEndpoints) {
  StoreOptions options;
  options.backend = "etcd";
  options.etcd_endpoints = {
      "http://127.0.0.1:" + std::to_string(testing::FreeLoopbackPort())};
  auto store = OpenStore(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(store.status().message()).find(options.etcd_endpoints[0]),
            std::string::npos)
      << store.status();
}

TEST(StoreOptionsTest, EtcdFailsOverPastADeadEndpoint) {
  kelpie::testing::TempDir dir;
  auto etcd = testing::EtcdProcess::Start(dir.File("etcd"));
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  StoreOptions options;
  options.backend = "etcd";
  options.etcd_endpoints = {"http://127.0.0.1:" + std::to_string(testing::FreeLoopbackPort()),
                            (*etcd)->endpoint()};
  auto store = OpenStore(options);
  ASSERT_TRUE(store.ok()) << store.status();
  auto put = (*store)->Put("/failover", "v");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ((*store)->Get("/failover")->value_view(), "v");
}

}  // namespace
}  // namespace kelpie::store
