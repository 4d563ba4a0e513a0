// The workload controllers against a real `kelpie server`, run in-process
// with fake nodes (tests/testing/fake_nodes.h) standing in for the
// scheduler and kubelets.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <atomic>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/informer_factory.h"
#include "orchestrator/controllers/shared_informer.h"
#include "orchestrator/controllers/workloads/daemon_set_controller.h"
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
    auto s = testing::KelpieServer::Start(dir_.File("data"), testing::FreeTcpPort(), dir_.File("server.log"));
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

// Watches pods of one app and remembers extremes of what it saw after every
// event: the most active pods and the fewest ready ones.
class PodCensus {
 public:
  PodCensus(client::RestClient& client, std::string app) : app_(std::move(app)) {
    InformerOptions o;
    o.resource = res::kPods;
    o.label_selector = "app=" + app_;
    informer_ = std::make_unique<SharedInformer>(client, o);
    auto count = [this](const json&) { Count(); };
    informer_->AddEventHandler({.on_add = count,
                                .on_update = [this](const json&, const json&) { Count(); },
                                .on_delete = [this](const json&, bool) { Count(); }});
    informer_->Start();
    informer_->WaitForSync(30s);
  }
  ~PodCensus() { informer_->Stop(); }
  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    max_active_ = 0;
    min_ready_ = 1 << 30;
  }
  int max_active() const {
    std::lock_guard<std::mutex> lock(mu_);
    return max_active_;
  }
  int min_ready() const {
    std::lock_guard<std::mutex> lock(mu_);
    return min_ready_;
  }

 private:
  void Count() {
    int active = 0, ready = 0;
    for (const json& p : informer_->store().List()) {
      if (!IsPodActive(p)) continue;
      ++active;
      if (IsPodReady(p)) ++ready;
    }
    std::lock_guard<std::mutex> lock(mu_);
    max_active_ = std::max(max_active_, active);
    min_ready_ = std::min(min_ready_, ready);
  }
  std::string app_;
  std::unique_ptr<SharedInformer> informer_;
  mutable std::mutex mu_;
  int max_active_ = 0;
  int min_ready_ = 1 << 30;
};

TEST_F(WorkloadControllersTest, ReplicaSetAdoptsCreatesAndNeverOvershootsUnderConcurrentDeletes) {
  // An orphan pod matching the selector exists before the ReplicaSet.
  json orphan = {{"apiVersion", "v1"},
                 {"kind", "Pod"},
                 {"metadata", {{"name", "orphan"}, {"labels", {{"app", "rs"}}}}},
                 {"spec", PodTemplate("rs", "busybox:1")["spec"]}};
  ASSERT_TRUE(client_->Create(res::kPods, "default", orphan).ok());
  StartControllers();
  PodCensus census(*client_, "rs");
  json rs = {{"apiVersion", "apps/v1"},
             {"kind", "ReplicaSet"},
             {"metadata", {{"name", "rs"}}},
             {"spec", {{"replicas", 5}, {"selector", {{"matchLabels", {{"app", "rs"}}}}}, {"template", PodTemplate("rs", "busybox:1")}}}};
  ASSERT_TRUE(client_->Create(res::kReplicaSets, "default", rs).ok());
  ASSERT_TRUE(Eventually([&] { return IntAt(Get(res::kReplicaSets, "rs"), "/status/readyReplicas") == 5; }))
      << Get(res::kReplicaSets, "rs").dump();
  json current = Get(res::kReplicaSets, "rs");
  EXPECT_EQ(IntAt(current, "/status/replicas"), 5);
  EXPECT_EQ(IntAt(current, "/status/availableReplicas"), 5);
  EXPECT_EQ(IntAt(current, "/status/fullyLabeledReplicas"), 5);
  EXPECT_EQ(IntAt(current, "/status/observedGeneration"), IntAt(current, "/metadata/generation"));
  // The orphan was adopted, so only four were created.
  json adopted = Get(res::kPods, "orphan");
  EXPECT_EQ(ControllerRefOf(adopted).value("uid", ""), StringAt(current, "/metadata/uid")) << adopted.dump();
  EXPECT_EQ(recorder_.With("SuccessfulCreate").size(), 4u);
  for (const json& p : ActivePods("rs")) {
    json ref = ControllerRefOf(p);
    EXPECT_EQ(ref.value("kind", ""), "ReplicaSet");
    EXPECT_TRUE(ref.value("controller", false));
  }

  // Delete pods from several threads at once, several rounds.
  for (int round = 0; round < 4; ++round) {
    std::vector<json> pods = ActivePods("rs");
    std::vector<std::thread> threads;
    for (size_t i = 0; i < std::min<size_t>(3, pods.size()); ++i) {
      threads.emplace_back([&, name = StringAt(pods[i], "/metadata/name")] {
        (void)client_->Delete(res::kPods, "default", name);
      });
    }
    for (auto& t : threads) t.join();
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(Eventually([&] {
    json s = Get(res::kReplicaSets, "rs");
    return IntAt(s, "/status/readyReplicas") == 5 && ActivePods("rs").size() == 5;
  }));
  std::this_thread::sleep_for(1s);  // anything extra would show up now
  EXPECT_EQ(ActivePods("rs").size(), 5u);
  EXPECT_LE(census.max_active(), 5);

  // Scale down: the extra pods go, never below the new count.
  json scaled = Get(res::kReplicaSets, "rs");
  scaled["spec"]["replicas"] = 2;
  ASSERT_TRUE(client_->Update(res::kReplicaSets, "default", scaled).ok());
  ASSERT_TRUE(Eventually([&] { return ActivePods("rs").size() == 2; }));
  EXPECT_FALSE(recorder_.With("SuccessfulDelete").empty());

  // A pod whose labels stop matching is released and replaced.
  std::string victim = StringAt(ActivePods("rs")[0], "/metadata/name");
  ASSERT_TRUE(client_->Patch(res::kPods, "default", victim, client::PatchType::kMerge,
                             json{{"metadata", {{"labels", {{"app", "other"}}}}}})
                  .ok());
  ASSERT_TRUE(Eventually([&] { return ControllerRefOf(Get(res::kPods, victim)).is_null(); }));
  ASSERT_TRUE(Eventually([&] { return ActivePods("rs").size() == 2; }));
}

json Deployment(const std::string& name, int replicas, const json& strategy) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"replicas", replicas},
            {"selector", {{"matchLabels", {{"app", name}}}}},
            {"strategy", strategy},
            {"template", PodTemplate(name, "busybox:1")}}}};
}

TEST_F(WorkloadControllersTest, RollingUpdateKeepsAvailabilityAndRollsBack) {
  StartControllers();
  json strategy = {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxSurge", 1}, {"maxUnavailable", 1}}}};
  ASSERT_TRUE(client_->Create(res::kDeployments, "default", Deployment("web", 4, strategy)).ok());
  auto status = server_->Kubectl({"rollout", "status", "deployment/web", "--timeout=120s"});
  ASSERT_TRUE(status.Succeeded()) << status.stdout_text << status.stderr_text;
  EXPECT_NE(status.stdout_text.find("successfully rolled out"), std::string::npos) << status.stdout_text;
  json d = Get(res::kDeployments, "web");
  EXPECT_EQ(StringAt(d, "/metadata/annotations/deployment.kubernetes.io~1revision"), "1");
  EXPECT_EQ(IntAt(d, "/status/availableReplicas"), 4);

  PodCensus census(*client_, "web");
  census.Reset();
  auto set = server_->Kubectl({"set", "image", "deployment/web", "c=busybox:2"});
  ASSERT_TRUE(set.Succeeded()) << set.stderr_text;
  status = server_->Kubectl({"rollout", "status", "deployment/web", "--timeout=120s"});
  ASSERT_TRUE(status.Succeeded()) << status.stdout_text << status.stderr_text;
  // At every step: at least replicas - maxUnavailable ready, at most
  // replicas + maxSurge pods.
  EXPECT_GE(census.min_ready(), 3);
  EXPECT_LE(census.max_active(), 5);
  for (const json& p : ActivePods("web")) EXPECT_EQ(StringAt(p, "/spec/containers/0/image"), "busybox:2");
  d = Get(res::kDeployments, "web");
  EXPECT_EQ(StringAt(d, "/metadata/annotations/deployment.kubernetes.io~1revision"), "2");
  EXPECT_EQ(IntAt(d, "/status/updatedReplicas"), 4);
  bool progressed = false;
  for (const json& c : d["status"]["conditions"]) {
    if (c["type"] == "Progressing") progressed = c["reason"] == "NewReplicaSetAvailable";
  }
  EXPECT_TRUE(progressed) << d["status"].dump();
  EXPECT_FALSE(recorder_.With("ScalingReplicaSet").empty());
  for (const auto& e : recorder_.With("ScalingReplicaSet")) {
    EXPECT_EQ(e.object, "Deployment/web");
    EXPECT_EQ(e.message.rfind("Scaled ", 0), 0u) << e.message;
  }

  // kubectl rollout undo patches the template back from the previous
  // revision's ReplicaSet; that ReplicaSet is reused as revision 3.
  census.Reset();
  auto undo = server_->Kubectl({"rollout", "undo", "deployment/web"});
  ASSERT_TRUE(undo.Succeeded()) << undo.stdout_text << undo.stderr_text;
  status = server_->Kubectl({"rollout", "status", "deployment/web", "--timeout=120s"});
  ASSERT_TRUE(status.Succeeded()) << status.stdout_text << status.stderr_text;
  EXPECT_GE(census.min_ready(), 3);
  EXPECT_LE(census.max_active(), 5);
  for (const json& p : ActivePods("web")) EXPECT_EQ(StringAt(p, "/spec/containers/0/image"), "busybox:1");
  d = Get(res::kDeployments, "web");
  EXPECT_EQ(StringAt(d, "/metadata/annotations/deployment.kubernetes.io~1revision"), "3");
  auto rss = client_->ListAll(res::kReplicaSets, "default", {.label_selector = "app=web"});
  ASSERT_TRUE(rss.ok());
  EXPECT_EQ((*rss)["items"].size(), 2u) << rss->dump();
  auto history = server_->Kubectl({"rollout", "history", "deployment/web"});
  ASSERT_TRUE(history.Succeeded()) << history.stderr_text;
  EXPECT_NE(history.stdout_text.find("2 "), std::string::npos) << history.stdout_text;
  EXPECT_NE(history.stdout_text.find("3 "), std::string::npos) << history.stdout_text;
}

TEST_F(WorkloadControllersTest, RecreatePauseResumeAndHistoryLimit) {
  StartControllers();
  json d = Deployment("rc", 3, {{"type", "Recreate"}});
  d["spec"]["revisionHistoryLimit"] = 1;
  ASSERT_TRUE(client_->Create(res::kDeployments, "default", d).ok());
  auto status = server_->Kubectl({"rollout", "status", "deployment/rc", "--timeout=120s"});
  ASSERT_TRUE(status.Succeeded()) << status.stdout_text << status.stderr_text;

  // Paused: a template change makes no new ReplicaSet.
  ASSERT_TRUE(server_->Kubectl({"rollout", "pause", "deployment/rc"}).Succeeded());
  ASSERT_TRUE(server_->Kubectl({"set", "image", "deployment/rc", "c=busybox:2"}).Succeeded());
  ASSERT_TRUE(Eventually([&] {
    json cur = Get(res::kDeployments, "rc");
    for (const json& c : cur["status"].value("conditions", json::array())) {
      if (c["type"] == "Progressing" && c["reason"] == "DeploymentPaused") return true;
    }
    return false;
  }));
  std::this_thread::sleep_for(1s);
  auto rss = client_->ListAll(res::kReplicaSets, "default", {.label_selector = "app=rc"});
  ASSERT_TRUE(rss.ok());
  EXPECT_EQ((*rss)["items"].size(), 1u);

  // Resumed, Recreate: old pods are gone before any new one exists.
  PodCensus census(*client_, "rc");
  census.Reset();
  ASSERT_TRUE(server_->Kubectl({"rollout", "resume", "deployment/rc"}).Succeeded());
  status = server_->Kubectl({"rollout", "status", "deployment/rc", "--timeout=120s"});
  ASSERT_TRUE(status.Succeeded()) << status.stdout_text << status.stderr_text;
  EXPECT_LE(census.max_active(), 3);
  ASSERT_TRUE(server_->Kubectl({"set", "image", "deployment/rc", "c=busybox:3"}).Succeeded());
  status = server_->Kubectl({"rollout", "status", "deployment/rc", "--timeout=120s"});
  ASSERT_TRUE(status.Succeeded()) << status.stdout_text << status.stderr_text;
  EXPECT_LE(census.max_active(), 3);
  // Three revisions, history limit 1: the new one and one old remain.
  ASSERT_TRUE(Eventually([&] {
    auto l = client_->ListAll(res::kReplicaSets, "default", {.label_selector = "app=rc"});
    return l.ok() && (*l)["items"].size() == 2;
  }));
}

TEST_F(WorkloadControllersTest, ProgressDeadlineExceeded) {
  testing::FakeNodesOptions o;
  o.ready = false;  // pods run but never turn ready
  StartControllers(o);
  json d = Deployment("slow", 2, {{"type", "RollingUpdate"}});
  d["spec"]["progressDeadlineSeconds"] = 2;
  ASSERT_TRUE(client_->Create(res::kDeployments, "default", d).ok());
  auto status = server_->Kubectl({"rollout", "status", "deployment/slow", "--timeout=60s"});
  EXPECT_FALSE(status.Succeeded());
  EXPECT_NE(status.stderr_text.find("exceeded its progress deadline"), std::string::npos)
      << status.stdout_text << status.stderr_text;
  json cur = Get(res::kDeployments, "slow");
  bool available_false = false;
  for (const json& c : cur["status"]["conditions"]) {
    if (c["type"] == "Available") available_false = c["status"] == "False";
  }
  EXPECT_TRUE(available_false) << cur["status"].dump();
  // Pods turning ready complete it.
  fake_->SetReady(true);
  status = server_->Kubectl({"rollout", "status", "deployment/slow", "--timeout=60s"});
  EXPECT_TRUE(status.Succeeded()) << status.stdout_text << status.stderr_text;
}

json Job(const std::string& name, const json& spec_extra) {
  json j = {{"apiVersion", "batch/v1"},
            {"kind", "Job"},
            {"metadata", {{"name", name}}},
            {"spec", {{"template", PodTemplate(name, "busybox:1")}}}};
  j["spec"]["template"]["spec"]["restartPolicy"] = "Never";
  j["spec"].update(spec_extra);
  return j;
}

bool HasCondition(const json& obj, const std::string& type, const std::string& reason = "") {
  const json::json_pointer p("/status/conditions");
  if (!obj.contains(p)) return false;
  for (const json& c : obj.at(p)) {
    if (c.value("type", "") == type && c.value("status", "") == "True" &&
        (reason.empty() || c.value("reason", "") == reason)) {
      return true;
    }
  }
  return false;
}

// Pods of Jobs named "fail..." fail, of other Jobs succeed; other pods run.
testing::FakeNodesOptions JobOutcomes() {
  testing::FakeNodesOptions o;
  o.phase_for = [](const json& pod) -> std::string {
    std::string job = StringAt(pod, "/metadata/labels/job-name");
    if (job.empty()) return "Running";
    return job.rfind("fail", 0) == 0 ? "Failed" : "Succeeded";
  };
  return o;
}

TEST_F(WorkloadControllersTest, JobRunsToCompletionsWithinParallelism) {
  StartControllers(JobOutcomes());
  PodCensus census(*client_, "batch");
  json j = Job("batch", {{"completions", 4}, {"parallelism", 2}, {"ttlSecondsAfterFinished", 1}});
  ASSERT_TRUE(client_->Create(res::kJobs, "default", j).ok());
  ASSERT_TRUE(Eventually([&] { return HasCondition(Get(res::kJobs, "batch"), "Complete"); }))
      << Get(res::kJobs, "batch").dump();
  json done = Get(res::kJobs, "batch");
  EXPECT_EQ(IntAt(done, "/status/succeeded"), 4);
  EXPECT_EQ(IntAt(done, "/status/active"), 0);
  EXPECT_FALSE(StringAt(done, "/status/completionTime").empty());
  EXPECT_LE(census.max_active(), 2);
  auto pods = client_->ListAll(res::kPods, "default", {.label_selector = "job-name=batch"});
  ASSERT_TRUE(pods.ok());
  EXPECT_EQ((*pods)["items"].size(), 4u);
  EXPECT_FALSE(recorder_.With("Completed").empty());
  // ttlSecondsAfterFinished: the finished Job is deleted (foreground: the
  // garbage collector removes its pods, then the Job).
  ASSERT_TRUE(Eventually([&] {
    json cur = Get(res::kJobs, "batch");
    return cur.is_null() || IsDeleting(cur);
  }));
}

TEST_F(WorkloadControllersTest, JobRetriesToBackoffLimitThenFails) {
  StartControllers(JobOutcomes());
  ASSERT_TRUE(client_->Create(res::kJobs, "default", Job("failing", {{"backoffLimit", 1}})).ok());
  // Two failures (the second after a 10 s back-off) exceed a limit of 1.
  ASSERT_TRUE(Eventually([&] { return HasCondition(Get(res::kJobs, "failing"), "Failed", "BackoffLimitExceeded"); },
                         90s))
      << Get(res::kJobs, "failing").dump();
  json cur = Get(res::kJobs, "failing");
  EXPECT_EQ(IntAt(cur, "/status/failed"), 2);
  EXPECT_EQ(IntAt(cur, "/status/active"), 0);
  std::this_thread::sleep_for(1s);
  auto pods = client_->ListAll(res::kPods, "default", {.label_selector = "job-name=failing"});
  ASSERT_TRUE(pods.ok());
  EXPECT_EQ((*pods)["items"].size(), 2u);  // no retry beyond the limit
  EXPECT_EQ(recorder_.With("SuccessfulCreate").size(), 2u);
}

TEST_F(WorkloadControllersTest, JobActiveDeadline) {
  testing::FakeNodesOptions o;  // pods keep running
  StartControllers(o);
  ASSERT_TRUE(client_->Create(res::kJobs, "default", Job("slowjob", {{"activeDeadlineSeconds", 2}, {"parallelism", 2}})).ok());
  ASSERT_TRUE(Eventually([&] { return HasCondition(Get(res::kJobs, "slowjob"), "Failed", "DeadlineExceeded"); }))
      << Get(res::kJobs, "slowjob").dump();
  // Its running pods are deleted.
  ASSERT_TRUE(Eventually([&] {
    auto pods = client_->ListAll(res::kPods, "default", {.label_selector = "job-name=slowjob"});
    if (!pods.ok()) return false;
    for (const json& p : (*pods)["items"]) {
      if (IsPodActive(p)) return false;
    }
    return true;
  }));
}

std::map<std::string, std::string> DaemonPodsByNode(client::RestClient& client) {
  std::map<std::string, std::string> out;
  auto pods = client.ListAll(res::kPods, "default", {.label_selector = "app=agent"});
  if (!pods.ok()) return out;
  for (const json& p : (*pods)["items"]) {
    if (!IsPodActive(p)) continue;
    std::string node = StringAt(p, "/spec/nodeName");
    if (out.count(node)) out[node] += ",";
    out[node] += StringAt(p, "/spec/containers/0/image");
  }
  return out;
}

TEST_F(WorkloadControllersTest, DaemonSetFollowsNodesJoiningAndLeaving) {
  StartControllers({}, 2);
  // A tainted node the daemon does not tolerate gets no pod.
  ASSERT_TRUE(fake_->AddNode("tainted", json::object(),
                             json::array({{{"key", "dedicated"}, {"value", "db"}, {"effect", "NoSchedule"}}}))
                  .ok());
  json ds = {{"apiVersion", "apps/v1"},
             {"kind", "DaemonSet"},
             {"metadata", {{"name", "agent"}}},
             {"spec",
              {{"selector", {{"matchLabels", {{"app", "agent"}}}}},
               {"updateStrategy", {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxUnavailable", 1}}}}},
               {"template", PodTemplate("agent", "busybox:1")}}}};
  ASSERT_TRUE(client_->Create(res::kDaemonSets, "default", ds).ok());
  using NodeMap = std::map<std::string, std::string>;
  ASSERT_TRUE(Eventually([&] {
    return DaemonPodsByNode(*client_) == NodeMap{{"node-0", "busybox:1"}, {"node-1", "busybox:1"}};
  })) << json(DaemonPodsByNode(*client_)).dump();
  // Pods are pinned by nodeAffinity on metadata.name and tolerate the
  // daemon taints.
  auto pods = client_->ListAll(res::kPods, "default", {.label_selector = "app=agent"});
  ASSERT_TRUE(pods.ok());
  for (const json& p : (*pods)["items"]) {
    EXPECT_EQ(DaemonPodNode(p), StringAt(p, "/spec/nodeName"));
    EXPECT_TRUE(p["spec"]["affinity"]["nodeAffinity"].contains("requiredDuringSchedulingIgnoredDuringExecution"));
    EXPECT_NE(p["spec"]["tolerations"].dump().find("node.kubernetes.io/unreachable"), std::string::npos);
  }
  auto status = server_->Kubectl({"rollout", "status", "daemonset/agent", "--timeout=60s"});
  EXPECT_TRUE(status.Succeeded()) << status.stdout_text << status.stderr_text;
  json cur = Get(res::kDaemonSets, "agent");
  EXPECT_EQ(IntAt(cur, "/status/desiredNumberScheduled"), 2);
  EXPECT_EQ(IntAt(cur, "/status/numberReady"), 2);

  // A node joins: it gets a pod. A node leaves: its pod goes.
  ASSERT_TRUE(fake_->AddNode("node-2").ok());
  ASSERT_TRUE(Eventually([&] { return DaemonPodsByNode(*client_).count("node-2") == 1; }));
  auto removed = fake_->RemoveNode("node-0");
  ASSERT_TRUE(removed.ok()) << removed;
  ASSERT_TRUE(Eventually([&] {
    return DaemonPodsByNode(*client_) == NodeMap{{"node-1", "busybox:1"}, {"node-2", "busybox:1"}};
  })) << json(DaemonPodsByNode(*client_)).dump();

  // Rolling update: every node ends with the new image, never more than
  // one node without a ready pod.
  PodCensus census(*client_, "agent");
  census.Reset();
  ASSERT_TRUE(server_->Kubectl({"set", "image", "daemonset/agent", "c=busybox:2"}).Succeeded());
  status = server_->Kubectl({"rollout", "status", "daemonset/agent", "--timeout=60s"});
  EXPECT_TRUE(status.Succeeded()) << status.stdout_text << status.stderr_text;
  ASSERT_TRUE(Eventually([&] {
    return DaemonPodsByNode(*client_) == NodeMap{{"node-1", "busybox:2"}, {"node-2", "busybox:2"}};
  })) << json(DaemonPodsByNode(*client_)).dump();
  EXPECT_GE(census.min_ready(), 1);
}

}  // namespace
}  // namespace kelpie::controllers::workloads
