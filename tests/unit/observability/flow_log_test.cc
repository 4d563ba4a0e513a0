// The flow log: the observer's flows as JSON lines that read back as the
// same flows, filtered by its query, rotated by size without splitting a
// line, and counted in kelpie_flow_log_flows_total.
#include "exporters/flows/flow_log.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <nlohmann/json.hpp>
#include <filesystem>
#include <sstream>

#include "absl/strings/str_split.h"
#include "common/files.h"
#include "exporters/flows/flow_format.h"
#include "tests/testing/test_env.h"

namespace kelpie::flows {
namespace {

Flow MakeFlow(int i, const std::string& ns) {
  Flow f;
  f.time_ns = 1'700'000'000'000'000'000 + i;
  f.node_name = "node-a";
  f.type = FlowEventType::kClose;
  f.protocol = "TCP";
  f.source.ip = "10.42.0.7";
  f.source.port = static_cast<uint16_t>(40000 + i);
  f.source.endpoint.kind = identity::EndpointKind::kPod;
  f.source.endpoint.namespace_name = ns;
  f.source.endpoint.pod_name = "client";
  f.destination.ip = "10.42.0.8";
  f.destination.port = 8080;
  f.bytes_sent = 100 + static_cast<uint64_t>(i);
  return f;
}

std::vector<std::string> Lines(const std::string& path) {
  std::string text = ReadFileToString(path).value_or("");
  std::vector<std::string> out = absl::StrSplit(text, '\n', absl::SkipEmpty());
  return out;
}

TEST(FlowLogTest, WritesEveryFlowAsAJsonLineThatReadsBack) {
  testing::TempDir dir;
  FlowObserver observer(16);
  prometheus::Registry registry;
  FlowLogOptions o;
  o.file.path = dir.File("flows.log");
  auto log = FlowLog::Start(o, observer, &registry);
  ASSERT_TRUE(log.ok()) << log.status();
  for (int i = 0; i < 40; ++i) observer.Add(MakeFlow(i, "shop"));  // more than the ring holds
  (*log)->Flush();
  auto lines = Lines(dir.File("flows.log"));
  ASSERT_EQ(lines.size(), 40u);
  for (int i = 0; i < 40; ++i) {
    auto back = FlowFromJson(nlohmann::json::parse(lines[static_cast<size_t>(i)]));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->source.port, 40000 + i);
    EXPECT_EQ(back->bytes_sent, 100u + static_cast<uint64_t>(i));
  }
  EXPECT_EQ((*log)->written(), 40u);
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, registry.Collect());
  EXPECT_NE(text.str().find("kelpie_flow_log_flows_total{outcome=\"written\"} 40"), std::string::npos) << text.str();
}

TEST(FlowLogTest, OnlyFlowsMatchingTheQuery) {
  testing::TempDir dir;
  FlowObserver observer(16);
  FlowLogOptions o;
  o.file.path = dir.File("flows.log");
  FlowFilter shop;
  shop.namespaces = {"shop"};
  o.query.allow.push_back(shop);
  auto log = FlowLog::Start(o, observer, nullptr);
  ASSERT_TRUE(log.ok()) << log.status();
  observer.Add(MakeFlow(1, "shop"));
  observer.Add(MakeFlow(2, "other"));
  observer.Add(MakeFlow(3, "shop"));
  (*log)->Flush();
  EXPECT_EQ(Lines(dir.File("flows.log")).size(), 2u);
}

TEST(FlowLogTest, RotatesBySizeWithoutSplittingLines) {
  testing::TempDir dir;
  FlowObserver observer(16);
  FlowLogOptions o;
  o.file.path = dir.File("flows.log");
  o.file.max_bytes = 2000;
  o.file.max_backups = 3;
  auto log = FlowLog::Start(o, observer, nullptr);
  ASSERT_TRUE(log.ok()) << log.status();
  // Flushing after each flow makes each one its own append.
  for (int i = 0; i < 60; ++i) {
    observer.Add(MakeFlow(i, "shop"));
    (*log)->Flush();
  }
  (*log)->Stop();
  size_t lines = 0;
  std::vector<std::string> files = {dir.File("flows.log")};
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    if (e.path().filename() != "flows.log") files.push_back(e.path().string());
  }
  EXPECT_EQ(files.size(), 4u);  // the live file and 3 backups
  for (const auto& f : files) {
    EXPECT_LE(std::filesystem::file_size(f), 2000u) << f;
    for (const auto& l : Lines(f)) {
      EXPECT_FALSE(nlohmann::json::parse(l, nullptr, false).is_discarded()) << l;
      ++lines;
    }
  }
  EXPECT_LT(lines, 60u);  // the oldest backups were deleted
  EXPECT_GT(lines, 0u);
}

TEST(FlowLogTest, AnUnwritableFolderIsAClearError) {
  FlowObserver observer(4);
  FlowLogOptions o;
  o.file.path = "/nonexistent-kelpie-folder/flows.log";
  auto log = FlowLog::Start(o, observer, nullptr);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("/nonexistent-kelpie-folder/flows.log"), std::string::npos);
}

}  // namespace
}  // namespace kelpie::flows
