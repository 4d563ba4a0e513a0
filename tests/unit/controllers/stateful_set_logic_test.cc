// Pure logic of the StatefulSet controller: pod identity, revisions,
// status counting and the plan of a sync for OrderedReady and Parallel
// sets, scale-down order, rolling updates with partition and
// maxUnavailable, OnDelete, failed pods.
#include <gtest/gtest.h>

#include "orchestrator/controllers/workloads/stateful_set_util.h"

namespace kelpie::controllers::workloads {
namespace {

using nlohmann::json;
using Kind = StatefulSetAction::Kind;

json Template(const std::string& image) {
  return {{"metadata", {{"labels", {{"app", "web"}}}}},
          {"spec", {{"containers", json::array({{{"name", "c"}, {"image", image}}})}}}};
}

json Set(int replicas, const std::string& policy = "OrderedReady", json strategy = json::object()) {
  json set = {{"apiVersion", "apps/v1"},
              {"kind", "StatefulSet"},
              {"metadata", {{"name", "web"}, {"namespace", "default"}, {"uid", "set-uid"}, {"generation", 4}}},
              {"spec",
               {{"replicas", replicas},
                {"serviceName", "web-svc"},
                {"podManagementPolicy", policy},
                {"selector", {{"matchLabels", {{"app", "web"}}}}},
                {"template", Template("busybox:1")}}}};
  if (!strategy.empty()) set["spec"]["updateStrategy"] = strategy;
  return set;
}

const StatefulSetRevisions kSame{"web-a", Template("busybox:1"), "web-a", Template("busybox:1")};
const StatefulSetRevisions kRolling{"web-a", Template("busybox:1"), "web-b", Template("busybox:2")};

json Pod(int ordinal, const std::string& revision = "web-a", bool running = true, bool ready = true,
         bool deleting = false) {
  json pod = NewStatefulSetPod(Set(1), Template("busybox:1"), revision, ordinal);
  pod["metadata"]["uid"] = "uid-" + std::to_string(ordinal);
  pod["metadata"]["resourceVersion"] = "1";
  pod["status"] = {{"phase", running ? "Running" : "Pending"},
                   {"conditions", json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}}})}};
  if (deleting) pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
  return pod;
}

std::vector<std::string> Describe(const std::vector<StatefulSetAction>& actions) {
  std::vector<std::string> out;
  for (const auto& a : actions) {
    std::string verb = a.kind == Kind::kCreate ? "create " : a.kind == Kind::kDelete ? "delete " : "relabel ";
    out.push_back(verb + StringAt(a.pod, "/metadata/name") + "@" + PodRevision(a.pod));
  }
  return out;
}

using Plan = std::vector<std::string>;
const auto kNow = std::chrono::system_clock::now();

TEST(StatefulPodIdentity, ParsesParentAndOrdinal) {
  EXPECT_EQ(ParseStatefulPodName("web-0").parent, "web");
  EXPECT_EQ(ParseStatefulPodName("web-0").ordinal, 0);
  EXPECT_EQ(ParseStatefulPodName("my-app-12").parent, "my-app");
  EXPECT_EQ(ParseStatefulPodName("my-app-12").ordinal, 12);
  EXPECT_EQ(ParseStatefulPodName("web--3").parent, "web-");  // as Kubernetes' (.*)-([0-9]+)$
  EXPECT_EQ(ParseStatefulPodName("web").ordinal, -1);
  EXPECT_EQ(ParseStatefulPodName("web-").ordinal, -1);
  EXPECT_EQ(ParseStatefulPodName("web-1a").ordinal, -1);
  EXPECT_EQ(ParseStatefulPodName("web-99999999999").ordinal, -1);  // beyond int32
  EXPECT_EQ(StatefulPodName("web", 7), "web-7");
}

TEST(StatefulPodIdentity, NewPodCarriesNameLabelsHostnameAndOwner) {
  json pod = NewStatefulSetPod(Set(3), Template("busybox:1"), "web-a", 2);
  EXPECT_EQ(pod["metadata"]["name"], "web-2");
  EXPECT_EQ(pod["metadata"]["namespace"], "default");
  EXPECT_EQ(pod["metadata"]["labels"]["app"], "web");
  EXPECT_EQ(pod["metadata"]["labels"][kStatefulSetPodNameLabel], "web-2");
  EXPECT_EQ(pod["metadata"]["labels"][kPodIndexLabel], "2");
  EXPECT_EQ(pod["metadata"]["labels"][kControllerRevisionHashLabel], "web-a");
  EXPECT_EQ(pod["spec"]["hostname"], "web-2");
  EXPECT_EQ(pod["spec"]["subdomain"], "web-svc");
  EXPECT_EQ(pod["spec"]["containers"][0]["image"], "busybox:1");
  const json& ref = pod["metadata"]["ownerReferences"][0];
  EXPECT_EQ(ref["kind"], "StatefulSet");
  EXPECT_EQ(ref["uid"], "set-uid");
  EXPECT_TRUE(ref["controller"].get<bool>());
  EXPECT_TRUE(IdentityMatches(Set(3), pod));

  json other = pod;
  other["metadata"]["labels"].erase(kPodIndexLabel);
  EXPECT_FALSE(IdentityMatches(Set(3), other));
  json renamed = Set(3);
  renamed["metadata"]["name"] = "db";
  EXPECT_FALSE(IdentityMatches(renamed, pod));
}

TEST(StatefulSetRevisionsTest, RevisionHoldsTheTemplateWithReplaceDirective) {
  json rev = NewControllerRevision(Set(3), 4, 0);
  const std::string name = rev["metadata"]["name"];
  EXPECT_EQ(name.rfind("web-", 0), 0u);
  EXPECT_EQ(rev["revision"], 4);
  EXPECT_EQ(rev["data"]["spec"]["template"]["$patch"], "replace");
  EXPECT_EQ(rev["metadata"]["labels"]["app"], "web");
  EXPECT_EQ("web-" + rev["metadata"]["labels"][kControllerRevisionHashKey].get<std::string>(), name);
  EXPECT_EQ(rev["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
  EXPECT_EQ(RevisionTemplate(rev), Template("busybox:1"));

  // Same template (null and empty members aside): equal and same name.
  json same_set = Set(5);
  same_set["spec"]["template"]["spec"]["containers"][0]["resources"] = json::object();
  json same = NewControllerRevision(same_set, 9, 0);
  EXPECT_TRUE(EqualRevision(rev, same));
  EXPECT_EQ(same["metadata"]["name"], name);
  // A new template or a collision count gives another name.
  json changed_set = Set(3);
  changed_set["spec"]["template"] = Template("busybox:2");
  json changed = NewControllerRevision(changed_set, 5, 0);
  EXPECT_FALSE(EqualRevision(rev, changed));
  EXPECT_NE(changed["metadata"]["name"], name);
  EXPECT_NE(NewControllerRevision(Set(3), 4, 1)["metadata"]["name"], name);
}

TEST(StatefulSetRevisionsTest, SortNextNumberAndTruncation) {
  std::vector<json> revs;
  for (int n : {3, 1, 5, 2, 4}) revs.push_back({{"metadata", {{"name", "r" + std::to_string(n)}}}, {"revision", n}});
  SortRevisions(revs);
  std::vector<std::string> names;
  for (const json& r : revs) names.push_back(r["metadata"]["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"r1", "r2", "r3", "r4", "r5"}));
  EXPECT_EQ(NextRevisionNumber(revs), 6);
  EXPECT_EQ(NextRevisionNumber({}), 1);
  // Live r5 (update) and r2 (a pod's) stay; of r1, r3, r4 two are kept.
  auto gone = RevisionsToTruncate(revs, {"r5", "r2"}, 2);
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0]["metadata"]["name"], "r1");
  EXPECT_TRUE(RevisionsToTruncate(revs, {"r5"}, 10).empty());
  EXPECT_EQ(RevisionsToTruncate(revs, {"r5"}, 0).size(), 4u);
}

TEST(StatefulSetSpecTest, DefaultsAsKubernetes) {
  json bare = {{"metadata", {{"name", "x"}}}, {"spec", json::object()}};
  StatefulSetSpec s = ReadStatefulSetSpec(bare);
  EXPECT_EQ(s.replicas, 1);
  EXPECT_FALSE(s.parallel);
  EXPECT_FALSE(s.on_delete);
  EXPECT_EQ(s.partition, 0);
  EXPECT_EQ(s.max_unavailable, 1);
  EXPECT_EQ(s.revision_history_limit, 10);
  json pct = Set(10, "Parallel", {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxUnavailable", "25%"}, {"partition", 3}}}});
  s = ReadStatefulSetSpec(pct);
  EXPECT_TRUE(s.parallel);
  EXPECT_EQ(s.max_unavailable, 2);  // rounded down
  EXPECT_EQ(s.partition, 3);
  pct["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = "1%";
  EXPECT_EQ(ReadStatefulSetSpec(pct).max_unavailable, 1);  // never below 1
}

TEST(StatefulSetPlan, OrderedReadyCreatesOneAtATimeAfterPredecessorIsReady) {
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3), kSame, {}, kNow)), Plan({"create web-0@web-a"}));
  // web-0 exists but is not ready: wait.
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3), kSame, {Pod(0, "web-a", true, false)}, kNow)), Plan());
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3), kSame, {Pod(0, "web-a", false, false)}, kNow)), Plan());
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3), kSame, {Pod(0)}, kNow)), Plan({"create web-1@web-a"}));
  // A missing predecessor is created first, whatever exists above it.
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3), kSame, {Pod(1), Pod(2)}, kNow)), Plan({"create web-0@web-a"}));
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3), kSame, {Pod(0), Pod(1), Pod(2)}, kNow)), Plan());
}

TEST(StatefulSetPlan, OrderedReadyWaitsForMinReadySeconds) {
  json set = Set(2);
  set["spec"]["minReadySeconds"] = 30;
  json pod = Pod(0);
  pod["status"]["conditions"][0]["lastTransitionTime"] = FormatTime(kNow - std::chrono::seconds(5));
  EXPECT_EQ(Describe(PlanStatefulSetSync(set, kSame, {pod}, kNow)), Plan());
  pod["status"]["conditions"][0]["lastTransitionTime"] = FormatTime(kNow - std::chrono::seconds(60));
  EXPECT_EQ(Describe(PlanStatefulSetSync(set, kSame, {pod}, kNow)), Plan({"create web-1@web-a"}));
}

TEST(StatefulSetPlan, ParallelCreatesAllAtOnce) {
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3, "Parallel"), kSame, {Pod(1, "web-a", false, false)}, kNow)),
            Plan({"create web-0@web-a", "create web-2@web-a"}));
}

TEST(StatefulSetPlan, ScaleDownHighestOrdinalFirstOneAtATime) {
  std::vector<json> four = {Pod(0), Pod(1), Pod(2), Pod(3)};
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(2), kSame, four, kNow)), Plan({"delete web-3@web-a"}));
  // web-3 is terminating: OrderedReady waits for it before web-2.
  std::vector<json> terminating = {Pod(0), Pod(1), Pod(2), Pod(3, "web-a", true, true, true)};
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(2), kSame, terminating, kNow)), Plan());
  // An unready replica blocks scale down; an unready condemned pod that is
  // the first unhealthy one may go.
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(2), kSame, {Pod(0), Pod(1, "web-a", true, false), Pod(2)}, kNow)), Plan());
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(2), kSame, {Pod(0), Pod(1), Pod(2, "web-a", true, false)}, kNow)),
            Plan({"delete web-2@web-a"}));
  // Parallel deletes them all, highest first, terminating ones skipped.
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(1, "Parallel"), kSame, terminating, kNow)),
            Plan({"delete web-2@web-a", "delete web-1@web-a"}));
}

TEST(StatefulSetPlan, RollingUpdateReplacesInReverseOrdinalOrder) {
  const json rolling = {{"type", "RollingUpdate"}};
  std::vector<json> pods = {Pod(0), Pod(1), Pod(2)};
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3, "OrderedReady", rolling), kRolling, pods, kNow)),
            Plan({"delete web-2@web-a"}));
  // web-2 is being replaced: nothing else while it is not back and ready.
  pods[2] = Pod(2, "web-a", true, true, true);
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3, "OrderedReady", rolling), kRolling, pods, kNow)), Plan());
  pods.pop_back();
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3, "OrderedReady", rolling), kRolling, pods, kNow)),
            Plan({"create web-2@web-b"}));
  pods.push_back(Pod(2, "web-b", true, false));
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3, "OrderedReady", rolling), kRolling, pods, kNow)), Plan());
  pods[2] = Pod(2, "web-b");
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3, "OrderedReady", rolling), kRolling, pods, kNow)),
            Plan({"delete web-1@web-a"}));
  // Even a Parallel set keeps to maxUnavailable (1) replaced at a time.
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3, "Parallel", rolling), kRolling, {Pod(0), Pod(1), Pod(2)}, kNow)),
            Plan({"delete web-2@web-a"}));
  const json two = {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxUnavailable", 2}}}};
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(3, "Parallel", two), kRolling, {Pod(0), Pod(1), Pod(2)}, kNow)),
            Plan({"delete web-2@web-a", "delete web-1@web-a"}));
}

TEST(StatefulSetPlan, PartitionKeepsLowerOrdinalsAtTheCurrentRevision) {
  const json partitioned = {{"type", "RollingUpdate"}, {"rollingUpdate", {{"partition", 2}}}};
  json set = Set(3, "OrderedReady", partitioned);
  EXPECT_EQ(Describe(PlanStatefulSetSync(set, kRolling, {Pod(0), Pod(1), Pod(2)}, kNow)), Plan({"delete web-2@web-a"}));
  EXPECT_EQ(Describe(PlanStatefulSetSync(set, kRolling, {Pod(0), Pod(1), Pod(2, "web-b")}, kNow)), Plan());
  // Below the partition, a missing pod is made from the current revision.
  EXPECT_EQ(Describe(PlanStatefulSetSync(set, kRolling, {Pod(0), Pod(2, "web-b")}, kNow)), Plan({"create web-1@web-a"}));
  json created = PlanStatefulSetSync(set, kRolling, {Pod(0), Pod(2, "web-b")}, kNow)[0].pod;
  EXPECT_EQ(created["spec"]["containers"][0]["image"], "busybox:1");
}

TEST(StatefulSetPlan, OnDeleteReplacesOnlyDeletedPods) {
  json set = Set(3, "OrderedReady", {{"type", "OnDelete"}});
  EXPECT_EQ(Describe(PlanStatefulSetSync(set, kRolling, {Pod(0), Pod(1), Pod(2)}, kNow)), Plan());
  auto plan = PlanStatefulSetSync(set, kRolling, {Pod(0), Pod(2)}, kNow);
  EXPECT_EQ(Describe(plan), Plan({"create web-1@web-b"}));
  EXPECT_EQ(plan[0].pod["spec"]["containers"][0]["image"], "busybox:2");
}

TEST(StatefulSetPlan, FailedPodsAreDeletedToBeRecreatedAndLabelsRepaired) {
  json failed = Pod(1);
  failed["status"]["phase"] = "Failed";
  auto plan = PlanStatefulSetSync(Set(3), kSame, {Pod(0), failed, Pod(2)}, kNow);
  ASSERT_EQ(Describe(plan), Plan({"delete web-1@web-a"}));
  EXPECT_EQ(plan[0].recreate_reason, "RecreatingFailedPod");
  EXPECT_EQ(plan[0].d_replicas, -1);

  json unlabeled = Pod(1);
  unlabeled["metadata"]["labels"].erase(kStatefulSetPodNameLabel);
  EXPECT_EQ(Describe(PlanStatefulSetSync(Set(2), kSame, {Pod(0), unlabeled}, kNow)), Plan({"relabel web-1@web-a"}));
  // A set being deleted does nothing.
  json deleting = Set(3);
  deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
  EXPECT_TRUE(PlanStatefulSetSync(deleting, kSame, {}, kNow).empty());
}

TEST(StatefulSetStatusTest, CountsAndCompletesRollingUpdate) {
  std::vector<json> pods = {Pod(0, "web-a"), Pod(1, "web-b"), Pod(2, "web-b", true, false),
                            Pod(3, "web-a", true, true, true)};
  StatefulSetCounts c = CountStatefulPods(pods, kRolling, 0, kNow);
  EXPECT_EQ(c.replicas, 4);
  EXPECT_EQ(c.ready, 3);
  EXPECT_EQ(c.available, 3);
  EXPECT_EQ(c.current, 1);  // the deleting web-3 does not count
  EXPECT_EQ(c.updated, 2);
  json status = StatefulSetStatus(Set(3), kRolling, c, 0);
  EXPECT_EQ(status["currentRevision"], "web-a");
  EXPECT_EQ(status["updateRevision"], "web-b");
  EXPECT_EQ(status["observedGeneration"], 4);

  c = CountStatefulPods({Pod(0, "web-b"), Pod(1, "web-b")}, kRolling, 0, kNow);
  status = StatefulSetStatus(Set(2), kRolling, c, 1);
  EXPECT_EQ(status["currentRevision"], "web-b");
  EXPECT_EQ(status["currentReplicas"], 2);
  EXPECT_EQ(status["updatedReplicas"], 2);
  EXPECT_EQ(status["collisionCount"], 1);
}

}  // namespace
}  // namespace kelpie::controllers::workloads
