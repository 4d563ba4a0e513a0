// Pure logic of the workload controllers: rollout arithmetic, template
// hashing, deletion ranking, slow-start batches, expectations.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "orchestrator/controllers/workloads/controller_expectations.h"
#include "orchestrator/controllers/workloads/daemon_set_controller.h"
#include "orchestrator/controllers/workloads/job_controller.h"
#include "orchestrator/controllers/workloads/deployment_util.h"
#include "orchestrator/controllers/workloads/workload_util.h"

namespace kelpie::controllers::workloads {
namespace {

using nlohmann::json;

TEST(RolloutMath, PercentagesRoundSurgeUpAndUnavailableDown) {
  EXPECT_EQ(*ScaledValueFromIntOrPercent("25%", 10, true), 3);
  EXPECT_EQ(*ScaledValueFromIntOrPercent("25%", 10, false), 2);
  EXPECT_EQ(*ScaledValueFromIntOrPercent("33%", 3, true), 1);
  EXPECT_EQ(*ScaledValueFromIntOrPercent("33%", 3, false), 0);
  EXPECT_EQ(*ScaledValueFromIntOrPercent("100%", 7, false), 7);
  EXPECT_EQ(*ScaledValueFromIntOrPercent(4, 100, false), 4);
  EXPECT_FALSE(ScaledValueFromIntOrPercent("25", 10, true).ok());
  EXPECT_FALSE(ScaledValueFromIntOrPercent("x%", 10, true).ok());
}

TEST(RolloutMath, BothZeroMeansOneUnavailable) {
  auto f = ResolveFenceposts("10%", "10%", 5);  // surge ceil(0.5)=1, unavailable floor(0.5)=0
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->max_surge, 1);
  EXPECT_EQ(f->max_unavailable, 0);
  f = ResolveFenceposts(0, "10%", 5);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->max_surge, 0);
  EXPECT_EQ(f->max_unavailable, 1);
}

TEST(RolloutMath, DeploymentDefaultsAndCaps) {
  json d = {{"spec", {{"replicas", 10}}}};
  EXPECT_EQ(MaxSurge(d), 3);
  EXPECT_EQ(MaxUnavailable(d), 2);
  d["spec"]["strategy"] = {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxUnavailable", 20}, {"maxSurge", 0}}}};
  EXPECT_EQ(MaxUnavailable(d), 10);  // capped at replicas
  d["spec"]["strategy"] = {{"type", "Recreate"}};
  EXPECT_EQ(MaxSurge(d), 0);
  EXPECT_EQ(MaxUnavailable(d), 0);
}

TEST(RolloutMath, NewReplicaSetGrowsWithinSurge) {
  // 10 desired, surge 3: 10 old -> new may have 3.
  EXPECT_EQ(NewRSNewReplicas(10, 3, 10, 0), 3);
  // Already at the limit.
  EXPECT_EQ(NewRSNewReplicas(10, 3, 13, 3), 3);
  // Old scaled down to 5: new may grow to 8.
  EXPECT_EQ(NewRSNewReplicas(10, 3, 8, 3), 8);
  // Never beyond desired.
  EXPECT_EQ(NewRSNewReplicas(10, 3, 9, 9), 10);
}

TEST(RolloutMath, ProportionalShares) {
  // A 4-replica set of a deployment whose max was 10 (8 + 2 surge) scaled
  // so the max is now 15: it gets round(4*15/10) - 4 = 2 of 5 to add.
  EXPECT_EQ(ReplicaSetProportion(4, 10, 15, 5, 0), 2);
  // Never more than what is left to add.
  EXPECT_EQ(ReplicaSetProportion(4, 10, 15, 5, 4), 1);
  // Scaling down takes a negative share.
  EXPECT_EQ(ReplicaSetProportion(4, 10, 5, -5, 0), -2);
  EXPECT_EQ(ReplicaSetProportion(0, 10, 15, 5, 0), 0);
}

TEST(RolloutMath, RevisionsAndAnnotations) {
  json rs = {{"metadata", {{"annotations", {{kRevisionAnnotation, "7"}}}}}};
  EXPECT_EQ(Revision(rs), 7);
  EXPECT_EQ(Revision(json{{"metadata", json::object()}}), 0);
  json d = {{"metadata",
             {{"annotations",
               {{"kubectl.kubernetes.io/last-applied-configuration", "{}"},
                {kRevisionAnnotation, "9"},
                {"kubernetes.io/change-cause", "set image"}}}}}};
  EXPECT_TRUE(CopyDeploymentAnnotations(d, rs));
  EXPECT_EQ(rs["metadata"]["annotations"]["kubernetes.io/change-cause"], "set image");
  EXPECT_EQ(rs["metadata"]["annotations"][kRevisionAnnotation], "7");
  EXPECT_FALSE(rs["metadata"]["annotations"].contains("kubectl.kubernetes.io/last-applied-configuration"));
  EXPECT_FALSE(CopyDeploymentAnnotations(d, rs));
}

TEST(TemplateHash, IgnoresHashLabelAndNullsAndChangesWithCollisions) {
  json a = {{"metadata", {{"labels", {{"app", "web"}}}, {"creationTimestamp", nullptr}}},
            {"spec", {{"containers", json::array({{{"name", "c"}, {"image", "x"}}})}}}};
  json b = a;
  b["metadata"].erase("creationTimestamp");
  b["metadata"]["labels"][kPodTemplateHashLabel] = "abc";
  b["spec"]["containers"][0]["resources"] = json::object();  // as kubectl sends it
  EXPECT_TRUE(EqualIgnoreHash(a, b));
  EXPECT_EQ(ComputeTemplateHash(a, std::nullopt), ComputeTemplateHash(b, std::nullopt));
  EXPECT_NE(ComputeTemplateHash(a, std::nullopt), ComputeTemplateHash(a, 1));
  json c = a;
  c["spec"]["containers"][0]["image"] = "y";
  EXPECT_FALSE(EqualIgnoreHash(a, c));
  EXPECT_NE(ComputeTemplateHash(a, std::nullopt), ComputeTemplateHash(c, std::nullopt));
  // Only characters that cannot spell words.
  for (char ch : ComputeTemplateHash(a, std::nullopt)) {
    EXPECT_NE(std::string("bcdfghjklmnpqrstvwxz2456789").find(ch), std::string::npos);
  }
  EXPECT_EQ(Fnv32a(""), 2166136261u);
  EXPECT_EQ(Fnv32a("a"), 0xe40c292cu);
}

json Pod(const std::string& name, const std::string& node, const std::string& phase, bool ready,
         const std::string& ready_since = "2026-01-01T00:00:00Z", int restarts = 0,
         const std::string& created = "2026-01-01T00:00:00Z") {
  json p = {{"metadata", {{"name", name}, {"creationTimestamp", created}}},
            {"spec", {{"nodeName", node}}},
            {"status",
             {{"phase", phase},
              {"conditions", json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"},
                                           {"lastTransitionTime", ready_since}}})},
              {"containerStatuses", json::array({{{"restartCount", restarts}}})}}}};
  if (node.empty()) p["spec"].erase("nodeName");
  return p;
}

std::vector<std::string> Ranked(const std::vector<json>& pods) {
  std::vector<std::string> names;
  for (size_t i : RankPodsForDeletion(pods)) names.push_back(pods[i]["metadata"]["name"]);
  return names;
}

TEST(DeletionRanking, FollowsKubernetesOrder) {
  EXPECT_EQ(Ranked({Pod("bound", "n1", "Running", true), Pod("unbound", "", "Pending", false)}),
            (std::vector<std::string>{"unbound", "bound"}));
  EXPECT_EQ(Ranked({Pod("running", "n1", "Running", false), Pod("pending", "n2", "Pending", false)}),
            (std::vector<std::string>{"pending", "running"}));
  EXPECT_EQ(Ranked({Pod("ready", "n1", "Running", true), Pod("notready", "n2", "Running", false)}),
            (std::vector<std::string>{"notready", "ready"}));
  // Two on n1, one on n2: the crowded node loses one first.
  EXPECT_EQ(Ranked({Pod("alone", "n2", "Running", true), Pod("a", "n1", "Running", true), Pod("b", "n1", "Running", true)})[2],
            "alone");
  EXPECT_EQ(Ranked({Pod("old", "n1", "Running", true, "2026-01-01T00:00:00Z"),
                    Pod("young", "n2", "Running", true, "2026-01-02T00:00:00Z")}),
            (std::vector<std::string>{"young", "old"}));
  EXPECT_EQ(Ranked({Pod("calm", "n1", "Running", true, "2026-01-01T00:00:00Z", 0),
                    Pod("crashy", "n2", "Running", true, "2026-01-01T00:00:00Z", 5)}),
            (std::vector<std::string>{"crashy", "calm"}));
  EXPECT_EQ(Ranked({Pod("older", "n1", "Running", true, "2026-01-01T00:00:00Z", 0, "2026-01-01T00:00:00Z"),
                    Pod("newer", "n2", "Running", true, "2026-01-01T00:00:00Z", 0, "2026-01-03T00:00:00Z")}),
            (std::vector<std::string>{"newer", "older"}));
}

TEST(PodState, ReadinessAndAvailability) {
  json p = Pod("p", "n", "Running", true, "2026-01-01T00:00:00Z");
  auto t0 = *ParseTime("2026-01-01T00:00:00Z");
  EXPECT_TRUE(IsPodReady(p));
  EXPECT_TRUE(IsPodAvailable(p, 0, t0));
  EXPECT_FALSE(IsPodAvailable(p, 10, t0 + std::chrono::seconds(5)));
  EXPECT_TRUE(IsPodAvailable(p, 10, t0 + std::chrono::seconds(10)));
  EXPECT_TRUE(IsPodActive(p));
  p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
  EXPECT_FALSE(IsPodActive(p));
  EXPECT_FALSE(IsPodActive(Pod("done", "n", "Succeeded", false)));
  EXPECT_EQ(FormatTime(t0), "2026-01-01T00:00:00Z");
  EXPECT_FALSE(ParseTime("yesterday").has_value());
}

TEST(SlowStartBatch, DoublesAndStopsAtFirstFailingBatch) {
  std::atomic<int> calls{0};
  BatchResult r = SlowStartBatch(10, 1, 4, [&] {
    ++calls;
    return absl::OkStatus();
  });
  EXPECT_EQ(r.succeeded, 10);
  EXPECT_TRUE(r.first_error.ok());
  EXPECT_EQ(calls.load(), 10);
  // Batches 1, 2, 4, 3: the 4th call fails, so the 4-batch completes and
  // nothing after it runs.
  calls = 0;
  r = SlowStartBatch(10, 1, 1, [&] { return ++calls == 4 ? absl::InternalError("quota") : absl::OkStatus(); });
  EXPECT_EQ(calls.load(), 7);
  EXPECT_EQ(r.succeeded, 6);
  EXPECT_FALSE(r.first_error.ok());
}

TEST(Expectations, WaitForObservedCreatesAndDeletes) {
  ControllerExpectations e;
  EXPECT_TRUE(e.Satisfied("ns/rs"));
  e.ExpectCreations("ns/rs", 2);
  EXPECT_FALSE(e.Satisfied("ns/rs"));
  e.CreationObserved("ns/rs");
  EXPECT_FALSE(e.Satisfied("ns/rs"));
  e.CreationSkipped("ns/rs");
  EXPECT_TRUE(e.Satisfied("ns/rs"));
  e.ExpectDeletions("ns/rs", {"ns/a", "ns/b"});
  e.DeletionObserved("ns/rs", "ns/a");
  e.DeletionObserved("ns/rs", "ns/a");  // the same pod twice counts once
  EXPECT_FALSE(e.Satisfied("ns/rs"));
  e.DeletionObserved("ns/rs", "ns/b");
  EXPECT_TRUE(e.Satisfied("ns/rs"));
  ControllerExpectations expiring(std::chrono::seconds(0));
  expiring.ExpectCreations("k", 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(expiring.Satisfied("k"));
}

TEST(DaemonSet, TaintsAndTolerations) {
  json taints = json::array({{{"key", "dedicated"}, {"value", "db"}, {"effect", "NoSchedule"}},
                             {{"key", "soft"}, {"effect", "PreferNoSchedule"}}});
  EXPECT_FALSE(ToleratesTaints(json::array(), taints));
  EXPECT_TRUE(ToleratesTaints(json::array({{{"key", "dedicated"}, {"operator", "Equal"}, {"value", "db"}}}), taints));
  EXPECT_FALSE(ToleratesTaints(json::array({{{"key", "dedicated"}, {"value", "web"}}}), taints));
  EXPECT_TRUE(ToleratesTaints(json::array({{{"key", "dedicated"}, {"operator", "Exists"}, {"effect", "NoSchedule"}}}), taints));
  EXPECT_FALSE(ToleratesTaints(json::array({{{"key", "dedicated"}, {"operator", "Exists"}, {"effect", "NoExecute"}}}), taints));
  EXPECT_TRUE(ToleratesTaints(json::array({{{"operator", "Exists"}}}), taints));
  json unreachable = json::array({{{"key", "node.kubernetes.io/unreachable"}, {"effect", "NoExecute"}}});
  EXPECT_FALSE(ToleratesTaints(json::array(), unreachable));
  EXPECT_TRUE(ToleratesTaints(WithDaemonTolerations(json::array(), false), unreachable));
  json net = json::array({{{"key", "node.kubernetes.io/network-unavailable"}, {"effect", "NoSchedule"}}});
  EXPECT_FALSE(ToleratesTaints(WithDaemonTolerations(json::array(), false), net));
  EXPECT_TRUE(ToleratesTaints(WithDaemonTolerations(json::array(), true), net));
  // Adding twice adds nothing.
  EXPECT_EQ(WithDaemonTolerations(WithDaemonTolerations(json::array(), false), false).size(), 6u);
}

TEST(DaemonSet, PinsPodsToTheirNode) {
  json spec = json::object();
  PinToNode(spec, "n1");
  json pod = {{"spec", spec}};
  EXPECT_EQ(DaemonPodNode(pod), "n1");
  // Existing terms keep their label expressions and gain the node field.
  json with_terms = {{"affinity", {{"nodeAffinity", {{"requiredDuringSchedulingIgnoredDuringExecution",
      {{"nodeSelectorTerms", json::array({{{"matchExpressions", json::array({{{"key", "zone"}, {"operator", "In"}, {"values", {"a"}}}})}}})}}}}}}}};
  PinToNode(with_terms, "n2");
  const json& term = with_terms["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0];
  EXPECT_EQ(term["matchExpressions"][0]["key"], "zone");
  EXPECT_EQ(term["matchFields"][0]["values"][0], "n2");
  json bound = {{"spec", {{"nodeName", "n3"}}}};
  EXPECT_EQ(DaemonPodNode(bound), "n3");
}

TEST(Job, BackoffDoublesFromTenSecondsToSixMinutes) {
  EXPECT_EQ(JobBackoff(0).count(), 0);
  EXPECT_EQ(JobBackoff(1).count(), 10);
  EXPECT_EQ(JobBackoff(2).count(), 20);
  EXPECT_EQ(JobBackoff(3).count(), 40);
  EXPECT_EQ(JobBackoff(6).count(), 320);
  EXPECT_EQ(JobBackoff(7).count(), 360);
  EXPECT_EQ(JobBackoff(50).count(), 360);
}

}  // namespace
}  // namespace kelpie::controllers::workloads
