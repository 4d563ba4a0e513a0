#include "control/detect/alert_pipeline.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "control/detect/container_resolver.h"
#include "control/detect/kernel_event_decoder.h"
#include "control/detect/rule_set.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "prometheus/registry.h"

namespace kelpie::detect {
namespace {

std::unique_ptr<Engine> CompileShadowRule() {
  std::string dir = std::filesystem::temp_directory_path() / ("kelpie-alert-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string path = dir + "/rules.yaml";
  std::ofstream(path) << "- rule: Shadow read\n"
                         "  desc: test\n"
                         "  condition: evt.type = open and fd.name = /etc/shadow\n"
                         "  output: shadow read by %proc.name\n"
                         "  priority: warning\n"
                         "  tags: [T1003]\n";
  auto rules = RuleSet::LoadFiles({path});
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(rules.ok()) << rules.status();
  auto engine = Engine::Compile(*rules);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return std::move(*engine);
}

kelpie_detect_event OpenRecord(uint32_t pid, uint64_t cgroup, const char* path) {
  kelpie_detect_event r{};
  r.kind = KELPIE_DETECT_OPEN;
  r.tgid = r.pid = pid;
  r.ppid = 1;
  r.cgroup_id = cgroup;
  std::snprintf(r.comm, sizeof(r.comm), "cat");
  std::snprintf(r.path, sizeof(r.path), "%s", path);
  return r;
}

class FakePods : public PodMetadataProvider {
 public:
  std::optional<PodMetadata> Lookup(const std::string& uid) const override {
    if (uid != "u1") return std::nullopt;
    PodMetadata m;
    m.k8s_namespace = "prod";
    m.name = "web-0";
    m.labels = {{"app", "web"}};
    m.containers["c1"] = {"nginx", "registry.local:5000/nginx:1.25"};
    return m;
  }
};

TEST(AlertPipelineTest, AttributesDeduplicatesAndCounts) {
  auto engine = CompileShadowRule();
  FakeContainerResolver resolver;
  resolver.Add(42, {"u1", "c1"});
  FakePods pods;
  KernelEventDecoder decoder(resolver, &pods, {4, "node-a"});
  // Parent exec so the ancestry has a name.
  kelpie_detect_event exec{};
  exec.kind = KELPIE_DETECT_EXEC;
  exec.tgid = 1;
  exec.cgroup_id = 42;
  std::snprintf(exec.path, sizeof(exec.path), "/bin/sh");
  ASSERT_NE(decoder.Decode(exec), nullptr);

  std::ostringstream out;
  StreamSink sink(out);
  auto registry = std::make_shared<prometheus::Registry>();
  AlertPipeline pipeline({"node-a", std::chrono::seconds(10), true}, {&sink}, registry.get());
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 7; ++i) {
    const Event* e = decoder.Decode(OpenRecord(77, 42, "/etc/shadow"));
    ASSERT_NE(e, nullptr);
    engine->Evaluate(*e, [&](const CompiledRule& r) {
      pipeline.OnMatch(r, *e, decoder.ancestor_pids(), false, t0 + std::chrono::milliseconds(i));
    });
  }
  EXPECT_EQ(pipeline.stats().raised, 1u);
  EXPECT_EQ(pipeline.stats().suppressed, 6u);
  // After the window the next alert carries the folded count.
  const Event* e = decoder.Decode(OpenRecord(77, 42, "/etc/shadow"));
  engine->Evaluate(*e, [&](const CompiledRule& r) {
    pipeline.OnMatch(r, *e, decoder.ancestor_pids(), false, t0 + std::chrono::seconds(11));
  });
  EXPECT_EQ(pipeline.stats().raised, 2u);

  std::istringstream lines(out.str());
  std::string first, second;
  std::getline(lines, first);
  std::getline(lines, second);
  auto j = nlohmann::json::parse(first);
  EXPECT_EQ(j["rule"], "Shadow read");
  EXPECT_EQ(j["priority"], "warning");
  EXPECT_EQ(j["node"], "node-a");
  EXPECT_EQ(j["host"], false);
  EXPECT_EQ(j["pod"]["namespace"], "prod");
  EXPECT_EQ(j["pod"]["name"], "web-0");
  EXPECT_EQ(j["pod"]["labels"]["app"], "web");
  EXPECT_EQ(j["container"]["name"], "nginx");
  EXPECT_EQ(j["container"]["image"], "registry.local:5000/nginx:1.25");
  EXPECT_EQ(j["process"]["pid"], 77);
  EXPECT_EQ(j["process"]["ancestors"][0]["name"], "sh");
  EXPECT_EQ(j["process"]["ancestors"][0]["pid"], 1);
  EXPECT_EQ(j["output"], "shadow read by cat");
  EXPECT_EQ(nlohmann::json::parse(second)["count"], 7);

  bool found = false;
  for (const auto& family : registry->Collect()) {
    if (family.name != "kelpie_alerts_total") continue;
    for (const auto& m : family.metric) {
      found = true;
      EXPECT_EQ(m.counter.value, 2);
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      EXPECT_EQ(labels["rule"], "Shadow read");
      EXPECT_EQ(labels["priority"], "warning");
      EXPECT_EQ(labels["namespace"], "prod");
    }
  }
  EXPECT_TRUE(found);
}

TEST(AlertPipelineTest, HostProcessesAreMarkedHost) {
  auto engine = CompileShadowRule();
  FakeContainerResolver resolver;
  KernelEventDecoder decoder(resolver, nullptr, {});
  const Event* e = decoder.Decode(OpenRecord(5, 999, "/etc/shadow"));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->container.id, "host");
  std::ostringstream out;
  StreamSink sink(out);
  AlertPipeline pipeline({}, {&sink}, nullptr);
  engine->Evaluate(*e, [&](const CompiledRule& r) {
    pipeline.OnMatch(r, *e, decoder.ancestor_pids(), false, std::chrono::steady_clock::now());
  });
  EXPECT_EQ(nlohmann::json::parse(out.str())["host"], true);
}

TEST(AlertPipelineTest, FileSinkRotatesBySize) {
  std::string dir = std::filesystem::temp_directory_path() / ("kelpie-rotate-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  {
    auto sink = JsonLinesFileSink::Open(dir + "/alerts.jsonl", 100, 2);
    ASSERT_TRUE(sink.ok()) << sink.status();
    std::string line(40, 'x');
    for (int i = 0; i < 7; ++i) ASSERT_TRUE((*sink)->Write(line).ok());
  }
  // 7 lines of 41 bytes, 2 per 100-byte file: 3 rotations, the newest 2
  // backups (alerts-<UTC time>.jsonl) kept beside the live file.
  EXPECT_TRUE(std::filesystem::exists(dir + "/alerts.jsonl"));
  int backups = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name != "alerts.jsonl") {
      EXPECT_EQ(name.rfind("alerts-", 0), 0u) << name;
      ++backups;
    }
  }
  EXPECT_EQ(backups, 2);
  EXPECT_LE(std::filesystem::file_size(dir + "/alerts.jsonl"), 100u);
  std::filesystem::remove_all(dir);
}

TEST(CgroupDirectoryResolverTest, MapsPodAndContainerDirectories) {
  std::string root = std::filesystem::temp_directory_path() / ("kelpie-cgroups-" + std::to_string(getpid()));
  std::filesystem::create_directories(root + "/podabc/ctr1");
  std::filesystem::create_directories(root + "/other");
  struct stat st{};
  ASSERT_EQ(::stat((root + "/podabc/ctr1").c_str(), &st), 0);
  uint64_t ctr = st.st_ino;
  ASSERT_EQ(::stat((root + "/podabc").c_str(), &st), 0);
  uint64_t pod = st.st_ino;
  ASSERT_EQ(::stat((root + "/other").c_str(), &st), 0);
  uint64_t other = st.st_ino;
  CgroupDirectoryResolver resolver(root);
  auto a = resolver.Resolve(ctr);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->pod_uid, "abc");
  EXPECT_EQ(a->container_id, "ctr1");
  auto b = resolver.Resolve(pod);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->container_id, "");
  EXPECT_FALSE(resolver.Resolve(other).has_value());
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace kelpie::detect
