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
#include "tests/integration/controllers/workload_test_fixture.h"

namespace kelpie::controllers::workloads {
namespace {

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

TEST_F(WorkloadControllersTest, CronJobPrunesHistoryAndStartsJobsOnSchedule) {
  StartControllers(JobOutcomes());
  // Yearly on a date far off: only history pruning happens at first.
  json cj = {{"apiVersion", "batch/v1"},
             {"kind", "CronJob"},
             {"metadata", {{"name", "nightly"}}},
             {"spec",
              {{"schedule", "0 0 1 1 *"},
               {"successfulJobsHistoryLimit", 1},
               {"failedJobsHistoryLimit", 0},
               {"jobTemplate", {{"spec", Job("nightly", json::object())["spec"]}}}}}};
  auto created = client_->Create(res::kCronJobs, "default", cj);
  ASSERT_TRUE(created.ok()) << created.status();
  // Three finished Jobs owned by it: two succeeded, one failed.
  for (int i = 0; i < 3; ++i) {
    json job = Job(absl::StrCat("old-", i), json::object());
    job["metadata"]["ownerReferences"] = json::array({MakeControllerRef(*created, "batch/v1", "CronJob")});
    job["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:done";
    auto j = client_->Create(res::kJobs, "default", job);
    ASSERT_TRUE(j.ok()) << j.status();
  }
  // The Job controller runs them to completion; the CronJob keeps one.
  ASSERT_TRUE(Eventually([&] {
    auto l = client_->ListAll(res::kJobs, "default", {});
    if (!l.ok()) return false;
    int owned = 0;
    for (const json& j : (*l)["items"]) {
      if (ControllerRefOf(j).value("name", "") == "nightly" && !IsDeleting(j)) ++owned;
    }
    return owned == 1;  // successfulJobsHistoryLimit
  }));
  EXPECT_FALSE(recorder_.With("SuccessfulDelete").empty());

  // Every minute: the next activation creates a Job named after it.
  json every = Get(res::kCronJobs, "nightly");
  every["spec"]["schedule"] = "* * * * *";
  ASSERT_TRUE(client_->Update(res::kCronJobs, "default", every).ok());
  ASSERT_TRUE(Eventually([&] { return !StringAt(Get(res::kCronJobs, "nightly"), "/status/lastScheduleTime").empty(); },
                         90s));
  json cur = Get(res::kCronJobs, "nightly");
  auto scheduled = ParseTime(StringAt(cur, "/status/lastScheduleTime"));
  ASSERT_TRUE(scheduled.has_value());
  const std::string job_name = absl::StrCat(
      "nightly-", std::chrono::duration_cast<std::chrono::minutes>(scheduled->time_since_epoch()).count());
  json job = Get(res::kJobs, job_name);
  ASSERT_FALSE(job.is_null()) << cur.dump();
  EXPECT_EQ(ControllerRefOf(job).value("kind", ""), "CronJob");
  EXPECT_EQ(StringAt(job, "/metadata/annotations/batch.kubernetes.io~1cronjob-scheduled-timestamp"),
            FormatTime(*scheduled));
}

}  // namespace
}  // namespace kelpie::controllers::workloads
