// The StatefulSet controller against a real `kelpie server` with fake nodes:
// OrderedReady creation in ordinal order, each pod only after its
// predecessors are Running and Ready, scale down in reverse, Parallel
// creation, a deleted pod recreated under the same name, rolling updates in
// reverse ordinal order respecting the partition, ControllerRevisions,
// events and `kubectl rollout status`.
#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "orchestrator/controllers/workloads/stateful_set_util.h"
#include "tests/integration/controllers/workload_test_fixture.h"

namespace kelpie::controllers::workloads {
namespace {

json StatefulSet(const std::string& name, int replicas, const std::string& policy, const json& strategy) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "StatefulSet"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"replicas", replicas},
            {"serviceName", name},
            {"podManagementPolicy", policy},
            {"updateStrategy", strategy},
            {"selector", {{"matchLabels", {{"app", name}}}}},
            {"template", PodTemplate(name, "busybox:1")}}}};
}

// Watches the pods of one set and records, in event order, each pod's
// appearance (with its revision and whether every lower ordinal was
// Running and Ready at that moment) and the start of each deletion (with
// whether every higher ordinal was gone), plus the fewest ready pods seen.
class StatefulPodLog {
 public:
  struct Created {
    std::string name;
    std::string revision;
    bool predecessors_ready;
  };
  struct Deleted {
    std::string name;
    bool successors_gone;
  };

  StatefulPodLog(client::RestClient& client, const std::string& set) : set_(set) {
    InformerOptions o;
    o.resource = res::kPods;
    o.label_selector = "app=" + set;
    informer_ = std::make_unique<SharedInformer>(client, o);
    informer_->AddEventHandler({
        .on_add = [this](const json& pod) { OnAdd(pod); },
        .on_update =
            [this](const json& old_pod, const json& pod) {
              if (!IsDeleting(old_pod) && IsDeleting(pod)) OnDeleteStart(pod);
              CountReady();
            },
        .on_delete =
            [this](const json& pod, bool) {
              if (!IsDeleting(pod)) OnDeleteStart(pod);
              CountReady();
            },
    });
    informer_->Start();
    informer_->WaitForSync(30s);
  }
  ~StatefulPodLog() { informer_->Stop(); }

  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    created_.clear();
    deleted_.clear();
    min_ready_ = 1 << 30;
  }
  std::vector<Created> created() const {
    std::lock_guard<std::mutex> lock(mu_);
    return created_;
  }
  std::vector<Deleted> deleted() const {
    std::lock_guard<std::mutex> lock(mu_);
    return deleted_;
  }
  int min_ready() const {
    std::lock_guard<std::mutex> lock(mu_);
    return min_ready_;
  }

 private:
  int64_t Ordinal(const json& pod) const { return ParseStatefulPodName(StringAt(pod, "/metadata/name")).ordinal; }

  void OnAdd(const json& pod) {
    const int64_t ordinal = Ordinal(pod);
    bool ready = true;
    for (int64_t o = 0; o < ordinal; ++o) {
      auto p = informer_->store().Get(ObjectKey("default", StatefulPodName(set_, o)));
      if (!p || !IsRunningAndReady(*p) || IsDeleting(*p)) ready = false;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      created_.push_back({StringAt(pod, "/metadata/name"), PodRevision(pod), ready});
    }
    CountReady();
  }

  void OnDeleteStart(const json& pod) {
    const int64_t ordinal = Ordinal(pod);
    bool gone = true;
    for (const json& p : informer_->store().List()) {
      if (Ordinal(p) > ordinal) gone = false;
    }
    std::lock_guard<std::mutex> lock(mu_);
    deleted_.push_back({StringAt(pod, "/metadata/name"), gone});
  }

  void CountReady() {
    int ready = 0;
    for (const json& p : informer_->store().List()) {
      if (IsRunningAndReady(p) && !IsDeleting(p)) ++ready;
    }
    std::lock_guard<std::mutex> lock(mu_);
    min_ready_ = std::min(min_ready_, ready);
  }

  const std::string set_;
  std::unique_ptr<SharedInformer> informer_;
  mutable std::mutex mu_;
  std::vector<Created> created_;
  std::vector<Deleted> deleted_;
  int min_ready_ = 1 << 30;
};

class StatefulSetControllerTest : public WorkloadControllersTest {
 protected:
  // Pod name → image, of the pods not being deleted.
  std::map<std::string, std::string> Images(const std::string& set) {
    std::map<std::string, std::string> out;
    for (const json& p : ActivePods(set)) out[StringAt(p, "/metadata/name")] = StringAt(p, "/spec/containers/0/image");
    return out;
  }
  json Set(const std::string& name) { return Get(res::kStatefulSets, name); }
  bool Patch(const std::string& name, const json& patch) {
    return client_->Patch(res::kStatefulSets, "default", name, client::PatchType::kMerge, patch).ok();
  }
};

std::vector<std::string> Names(const std::vector<StatefulPodLog::Created>& created) {
  std::vector<std::string> out;
  for (const auto& c : created) out.push_back(c.name);
  return out;
}

using Strings = std::vector<std::string>;
using ImageMap = std::map<std::string, std::string>;

TEST_F(StatefulSetControllerTest, OrderedReadyCreatesInOrderAfterReadinessAndScalesDownInReverse) {
  testing::FakeNodesOptions options;
  options.ready = false;  // pods run but are not ready until the test says so
  StartControllers(options);
  StatefulPodLog log(*client_, "web");
  ASSERT_TRUE(client_->Create(res::kStatefulSets, "default",
                              StatefulSet("web", 3, "OrderedReady", {{"type", "RollingUpdate"}}))
                  .ok());
  ASSERT_TRUE(Eventually([&] {
    auto pods = ActivePods("web");
    return pods.size() == 1 && StringAt(pods[0], "/status/phase") == "Running";
  }));
  // web-0 runs but is not ready: web-1 is not created meanwhile.
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(Images("web"), (ImageMap{{"web-0", "busybox:1"}}));
  EXPECT_EQ(IntAt(Set("web"), "/status/replicas"), 1);
  EXPECT_EQ(IntAt(Set("web"), "/status/readyReplicas"), 0);

  fake_->SetReady(true);
  ASSERT_TRUE(Eventually([&] { return IntAt(Set("web"), "/status/readyReplicas") == 3; })) << Set("web").dump();
  auto created = log.created();
  EXPECT_EQ(Names(created), (Strings{"web-0", "web-1", "web-2"}));
  for (const auto& c : created) EXPECT_TRUE(c.predecessors_ready) << c.name << " created before its predecessors were ready";

  json set = Set("web");
  const std::string revision = StringAt(set, "/status/updateRevision");
  EXPECT_FALSE(revision.empty());
  EXPECT_EQ(StringAt(set, "/status/currentRevision"), revision);
  EXPECT_EQ(IntAt(set, "/status/replicas"), 3);
  EXPECT_EQ(IntAt(set, "/status/currentReplicas"), 3);
  EXPECT_EQ(IntAt(set, "/status/updatedReplicas"), 3);
  EXPECT_EQ(IntAt(set, "/status/availableReplicas"), 3);
  EXPECT_EQ(IntAt(set, "/status/observedGeneration"), IntAt(set, "/metadata/generation"));

  // Identity: name, labels, hostname, subdomain, revision, owner.
  json pod = Get(res::kPods, "web-1");
  EXPECT_EQ(StringAt(pod, "/spec/hostname"), "web-1");
  EXPECT_EQ(StringAt(pod, "/spec/subdomain"), "web");
  EXPECT_EQ(pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"], "web-1");
  EXPECT_EQ(pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"], "1");
  EXPECT_EQ(pod["metadata"]["labels"]["controller-revision-hash"], revision);
  EXPECT_EQ(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
  EXPECT_EQ(pod["metadata"]["ownerReferences"][0]["uid"], set["metadata"]["uid"]);
  EXPECT_TRUE(pod["metadata"]["ownerReferences"][0]["controller"].get<bool>());

  // The revision is a ControllerRevision owned by the set.
  auto rev = client_->Get(res::kControllerRevisions, "default", revision);
  ASSERT_TRUE(rev.ok()) << rev.status();
  EXPECT_EQ(IntAt(*rev, "/revision"), 1);
  EXPECT_EQ((*rev)["metadata"]["ownerReferences"][0]["uid"], set["metadata"]["uid"]);
  EXPECT_EQ(StringAt(*rev, "/data/spec/template/spec/containers/0/image"), "busybox:1");

  auto status = server_->Kubectl({"rollout", "status", "statefulset/web", "--timeout=60s"});
  EXPECT_TRUE(status.Succeeded()) << status.stdout_text << status.stderr_text;
  EXPECT_NE(status.stdout_text.find("statefulset rolling update complete 3 pods at revision " + revision),
            std::string::npos)
      << status.stdout_text;

  auto creates = recorder_.With("SuccessfulCreate");
  Strings messages;
  for (const auto& e : creates) {
    if (e.object == "StatefulSet/web") messages.push_back(e.message);
  }
  EXPECT_EQ(messages, (Strings{"create Pod web-0 in StatefulSet web successful",
                               "create Pod web-1 in StatefulSet web successful",
                               "create Pod web-2 in StatefulSet web successful"}));

  // Scale down: web-2 goes first, web-1 only once web-2 is gone.
  log.Reset();
  ASSERT_TRUE(Patch("web", {{"spec", {{"replicas", 1}}}}));
  ASSERT_TRUE(Eventually([&] { return Images("web") == ImageMap{{"web-0", "busybox:1"}} && IntAt(Set("web"), "/status/replicas") == 1; }))
      << json(Images("web")).dump();
  auto deleted = log.deleted();
  ASSERT_EQ(deleted.size(), 2u);
  EXPECT_EQ(deleted[0].name, "web-2");
  EXPECT_EQ(deleted[1].name, "web-1");
  EXPECT_TRUE(deleted[1].successors_gone) << "web-1 deleted while web-2 still existed";
  Strings delete_messages;
  for (const auto& e : recorder_.With("SuccessfulDelete")) {
    if (e.object == "StatefulSet/web") delete_messages.push_back(e.message);
  }
  EXPECT_EQ(delete_messages, (Strings{"delete Pod web-2 in StatefulSet web successful",
                                      "delete Pod web-1 in StatefulSet web successful"}));
}

TEST_F(StatefulSetControllerTest, ParallelCreatesAllAtOnceAndDeletedPodComesBackUnderItsName) {
  testing::FakeNodesOptions options;
  options.ready = false;
  StartControllers(options);
  ASSERT_TRUE(
      client_->Create(res::kStatefulSets, "default", StatefulSet("par", 3, "Parallel", {{"type", "RollingUpdate"}})).ok());
  // All three exist although none is ready.
  ASSERT_TRUE(Eventually([&] { return Images("par").size() == 3; })) << json(Images("par")).dump();
  EXPECT_EQ(IntAt(Set("par"), "/status/readyReplicas"), 0);
  EXPECT_EQ(Images("par"), (ImageMap{{"par-0", "busybox:1"}, {"par-1", "busybox:1"}, {"par-2", "busybox:1"}}));

  fake_->SetReady(true);
  ASSERT_TRUE(Eventually([&] { return IntAt(Set("par"), "/status/readyReplicas") == 3; })) << Set("par").dump();

  // A deleted pod is created again with the same name and identity.
  const std::string old_uid = StringAt(Get(res::kPods, "par-1"), "/metadata/uid");
  ASSERT_TRUE(client_->Delete(res::kPods, "default", "par-1").ok());
  ASSERT_TRUE(Eventually([&] {
    json pod = Get(res::kPods, "par-1");
    return !pod.is_null() && StringAt(pod, "/metadata/uid") != old_uid && !IsDeleting(pod) && IsRunningAndReady(pod);
  }));
  json pod = Get(res::kPods, "par-1");
  EXPECT_EQ(StringAt(pod, "/spec/hostname"), "par-1");
  EXPECT_EQ(pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"], "1");
  ASSERT_TRUE(Eventually([&] { return IntAt(Set("par"), "/status/readyReplicas") == 3; }));
  EXPECT_EQ(Images("par").size(), 3u);
}

TEST_F(StatefulSetControllerTest, RollingUpdateInReverseOrdinalOrderRespectsPartition) {
  StartControllers();
  ASSERT_TRUE(client_->Create(res::kStatefulSets, "default",
                              StatefulSet("db", 3, "OrderedReady",
                                          {{"type", "RollingUpdate"}, {"rollingUpdate", {{"partition", 1}}}}))
                  .ok());
  ASSERT_TRUE(Eventually([&] { return IntAt(Set("db"), "/status/readyReplicas") == 3; })) << Set("db").dump();
  const std::string first = StringAt(Set("db"), "/status/updateRevision");
  StatefulPodLog log(*client_, "db");
  log.Reset();

  auto r = server_->Kubectl({"set", "image", "statefulset/db", "c=busybox:2"});
  ASSERT_TRUE(r.Succeeded()) << r.stdout_text << r.stderr_text;
  auto status = server_->Kubectl({"rollout", "status", "statefulset/db", "--timeout=60s"});
  EXPECT_TRUE(status.Succeeded()) << status.stdout_text << status.stderr_text;
  EXPECT_NE(status.stdout_text.find("partitioned roll out complete: 2 new pods have been updated"), std::string::npos)
      << status.stdout_text;
  // Ordinals at or above the partition are replaced, highest first, one at
  // a time; db-0 keeps the old template.
  ASSERT_TRUE(Eventually([&] {
    return Images("db") == ImageMap{{"db-0", "busybox:1"}, {"db-1", "busybox:2"}, {"db-2", "busybox:2"}} &&
           IntAt(Set("db"), "/status/readyReplicas") == 3;
  })) << json(Images("db")).dump();
  json set = Set("db");
  const std::string second = StringAt(set, "/status/updateRevision");
  EXPECT_NE(second, first);
  EXPECT_EQ(StringAt(set, "/status/currentRevision"), first);
  EXPECT_EQ(IntAt(set, "/status/updatedReplicas"), 2);
  EXPECT_EQ(IntAt(set, "/status/currentReplicas"), 1);
  EXPECT_EQ(Get(res::kPods, "db-0")["metadata"]["labels"]["controller-revision-hash"], first);
  EXPECT_EQ(Names(log.created()), (Strings{"db-2", "db-1"}));
  for (const auto& c : log.created()) EXPECT_EQ(c.revision, second) << c.name;
  EXPECT_GE(log.min_ready(), 2);  // maxUnavailable 1

  // Partition 0: db-0 follows, and the update revision becomes current.
  ASSERT_TRUE(Patch("db", {{"spec", {{"updateStrategy", {{"rollingUpdate", {{"partition", 0}}}}}}}}));
  ASSERT_TRUE(Eventually([&] {
    json s = Set("db");
    return Images("db") == ImageMap{{"db-0", "busybox:2"}, {"db-1", "busybox:2"}, {"db-2", "busybox:2"}} &&
           StringAt(s, "/status/currentRevision") == second && IntAt(s, "/status/currentReplicas") == 3;
  })) << Set("db").dump();
  EXPECT_EQ(Names(log.created()), (Strings{"db-2", "db-1", "db-0"}));
  EXPECT_GE(log.min_ready(), 2);
  auto revisions = client_->List(res::kControllerRevisions, "default", {.label_selector = "app=db"});
  ASSERT_TRUE(revisions.ok()) << revisions.status();
  std::map<std::string, int64_t> numbers;
  for (const json& rev : (*revisions)["items"]) numbers[StringAt(rev, "/metadata/name")] = IntAt(rev, "/revision");
  EXPECT_EQ(numbers, (std::map<std::string, int64_t>{{first, 1}, {second, 2}}));

  // kubectl rollout undo applies the previous revision's data: the first
  // revision is renumbered 3 (no copy is made) and the pods roll back.
  auto undo = server_->Kubectl({"rollout", "undo", "statefulset/db"});
  ASSERT_TRUE(undo.Succeeded()) << undo.stdout_text << undo.stderr_text;
  ASSERT_TRUE(Eventually([&] {
    json s = Set("db");
    return Images("db") == ImageMap{{"db-0", "busybox:1"}, {"db-1", "busybox:1"}, {"db-2", "busybox:1"}} &&
           StringAt(s, "/status/currentRevision") == first && IntAt(s, "/status/currentReplicas") == 3;
  })) << Set("db").dump();
  auto renumbered = client_->Get(res::kControllerRevisions, "default", first);
  ASSERT_TRUE(renumbered.ok()) << renumbered.status();
  EXPECT_EQ(IntAt(*renumbered, "/revision"), 3);
  auto history = server_->Kubectl({"rollout", "history", "statefulset/db"});
  EXPECT_TRUE(history.Succeeded()) << history.stdout_text << history.stderr_text;
  EXPECT_NE(history.stdout_text.find("3 "), std::string::npos) << history.stdout_text;
}

TEST_F(StatefulSetControllerTest, OnDeleteReplacesOnlyDeletedPods) {
  StartControllers();
  ASSERT_TRUE(
      client_->Create(res::kStatefulSets, "default", StatefulSet("od", 2, "OrderedReady", {{"type", "OnDelete"}})).ok());
  ASSERT_TRUE(Eventually([&] { return IntAt(Set("od"), "/status/readyReplicas") == 2; }));
  ASSERT_TRUE(server_->Kubectl({"set", "image", "statefulset/od", "c=busybox:2"}).Succeeded());
  ASSERT_TRUE(Eventually([&] { return IntAt(Set("od"), "/status/observedGeneration") == IntAt(Set("od"), "/metadata/generation"); }));
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(Images("od"), (ImageMap{{"od-0", "busybox:1"}, {"od-1", "busybox:1"}}));
  ASSERT_TRUE(client_->Delete(res::kPods, "default", "od-1").ok());
  ASSERT_TRUE(Eventually([&] {
    return Images("od") == ImageMap{{"od-0", "busybox:1"}, {"od-1", "busybox:2"}} &&
           IntAt(Set("od"), "/status/readyReplicas") == 2 && IntAt(Set("od"), "/status/updatedReplicas") == 1;
  })) << json(Images("od")).dump() << Set("od").dump();
  // Not every pod is updated: the old revision stays current.
  json set = Set("od");
  EXPECT_NE(StringAt(set, "/status/currentRevision"), StringAt(set, "/status/updateRevision"));
  EXPECT_EQ(IntAt(set, "/status/currentReplicas"), 1);
}

}  // namespace
}  // namespace kelpie::controllers::workloads
