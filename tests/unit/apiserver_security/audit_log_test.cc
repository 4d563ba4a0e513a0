// The audit log: audit.k8s.io/v1 events as JSON lines, never blocking on
// the disk; events beyond the queue are dropped and counted.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <prometheus/registry.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "common/files.h"
#include "orchestrator/apiserver/audit_log.h"
#include "tests/testing/test_env.h"

namespace kelpie::apiserver {
namespace {

using nlohmann::json;

AuditEvent Event(const std::string& name) {
  AuditEvent e;
  e.audit_id = "id-" + name;
  e.request_uri = "/api/v1/namespaces/default/configmaps";
  e.verb = "create";
  e.user.name = "jane";
  e.user.groups = {"system:authenticated"};
  e.source_ips = {"127.0.0.1"};
  e.has_object_ref = true;
  e.resource = "configmaps";
  e.namespace_name = "default";
  e.name = name;
  e.api_version = "v1";
  e.response_code = 201;
  e.request_received = AuditTimestampNow();
  e.stage_timestamp = AuditTimestampNow();
  return e;
}

double CounterValue(prometheus::Registry& r, const std::string& name) {
  for (const auto& f : r.Collect()) {
    if (f.name == name && !f.metric.empty()) return f.metric[0].counter.value;
  }
  return -1;
}

TEST(AuditLog, WritesOneEventPerLine) {
  testing::TempDir dir;
  prometheus::Registry registry;
  auto log = AuditLog::Open({dir.File("audit.log"), 100}, &registry);
  ASSERT_TRUE(log.ok()) << log.status();
  AuditEvent forbidden = Event("b");
  forbidden.response_code = 403;
  forbidden.response_status = "Failure";
  forbidden.response_reason = "Forbidden";
  (*log)->Record(Event("a"));
  (*log)->Record(forbidden);
  (*log)->Flush();
  auto text = ReadFileToString(dir.File("audit.log"));
  ASSERT_TRUE(text.ok());
  std::vector<std::string> lines = absl::StrSplit(*text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  json a = json::parse(lines[0]);
  EXPECT_EQ(a["kind"], "Event");
  EXPECT_EQ(a["apiVersion"], "audit.k8s.io/v1");
  EXPECT_EQ(a["level"], "Metadata");
  EXPECT_EQ(a["stage"], "ResponseComplete");
  EXPECT_EQ(a["auditID"], "id-a");
  EXPECT_EQ(a["verb"], "create");
  EXPECT_EQ(a["user"]["username"], "jane");
  EXPECT_EQ(a["objectRef"]["resource"], "configmaps");
  EXPECT_EQ(a["objectRef"]["name"], "a");
  EXPECT_EQ(a["responseStatus"]["code"], 201);
  EXPECT_TRUE(a.contains("requestReceivedTimestamp"));
  EXPECT_TRUE(a.contains("stageTimestamp"));
  json b = json::parse(lines[1]);
  EXPECT_EQ(b["responseStatus"]["reason"], "Forbidden");
  EXPECT_EQ(CounterValue(registry, "apiserver_audit_event_total"), 2);
  EXPECT_EQ(CounterValue(registry, "apiserver_audit_error_total"), 0);
}

TEST(AuditLog, DropsAndCountsWhenTheDiskDoesNotKeepUp) {
  // A pipe nobody reads stands in for a stuck disk: once its buffer is
  // full, the writer thread blocks in write().
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ASSERT_EQ(::fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
  std::string filler(4096, 'x');
  while (::write(fds[1], filler.data(), filler.size()) > 0) {
  }
  prometheus::Registry registry;
  auto log = AuditLog::Open({"/proc/self/fd/" + std::to_string(fds[1]), 1}, &registry);
  ASSERT_TRUE(log.ok()) << log.status();
  for (int i = 0; i < 10; ++i) (*log)->Record(Event(std::to_string(i)));  // returns at once
  // One event may be stuck in write(), one may wait in the queue.
  EXPECT_GE((*log)->dropped(), 8u);
  EXPECT_EQ(CounterValue(registry, "apiserver_audit_error_total"), static_cast<double>((*log)->dropped()));
  // Drain the pipe so the writer finishes.
  ASSERT_EQ(::fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
  std::thread reader([&] {
    char buf[65536];
    for (int i = 0; i < 2000; ++i) {
      if (::read(fds[0], buf, sizeof(buf)) <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  (*log)->Flush();
  log->reset();
  reader.join();
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(AuditLog, RotatesBySizeAsKubeApiserverDoes) {
  testing::TempDir dir;
  AuditLogOptions o;
  o.path = dir.File("audit.log");
  o.max_bytes = 2000;  // a few events per file
  o.max_backups = 2;
  auto log = AuditLog::Open(o, nullptr);
  ASSERT_TRUE(log.ok()) << log.status();
  for (int i = 0; i < 40; ++i) {
    (*log)->Record(Event(std::to_string(i)));
    (*log)->Flush();  // one write per event, so every rotation point is an event boundary
  }
  log->reset();
  std::vector<std::string> backups;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    const std::string name = e.path().filename().string();
    if (name != "audit.log") backups.push_back(name);
  }
  ASSERT_EQ(backups.size(), 2u);
  for (const auto& b : backups) {
    EXPECT_EQ(b.rfind("audit-", 0), 0u) << b;  // audit-<UTC time>.log
    for (const auto& line : absl::StrSplit(ReadFileToString(dir.File(b)).value_or(""), '\n', absl::SkipEmpty())) {
      EXPECT_FALSE(json::parse(std::string(line), nullptr, false).is_discarded()) << line;
    }
  }
  EXPECT_LE(std::filesystem::file_size(dir.File("audit.log")), 2000u);
}

TEST(AuditLog, UnwritablePathIsAnError) {
  auto log = AuditLog::Open({"/nonexistent-dir/audit.log", 10}, nullptr);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(std::string(log.status().message()).find("/nonexistent-dir/audit.log"), std::string::npos);
}

}  // namespace
}  // namespace kelpie::apiserver
