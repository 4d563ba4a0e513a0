#include "orchestrator/scheduler/scheduler_cache.h"

#include <gtest/gtest.h>

#include <map>

#include "orchestrator/scheduler/plugins.h"
#include "orchestrator/scheduler/schedule_algorithm.h"
#include "tests/unit/scheduler/test_objects.h"

namespace kelpie::scheduler {
namespace {

using testing::BoundPod;
using testing::Node;
using testing::NodeFrom;
using testing::Pod;
using testing::PodFrom;

struct FakeTime {
  Clock::time_point now{std::chrono::seconds(1000)};
  std::function<Clock::time_point()> Fn() {
    return [this] { return now; };
  }
};

TEST(SchedulerCacheTest, AssumeCountsUntilForgotten) {
  FakeTime t;
  SchedulerCache cache(t.Fn(), std::chrono::seconds(30));
  cache.AddOrUpdateNode(Node("n1", "1"));
  ASSERT_TRUE(cache.AssumePod(BoundPod(Pod("a", "600m"), "n1")).ok());
  {
    auto lock = cache.ReadLock();
    EXPECT_EQ(cache.FindNode("n1")->requested.milli_cpu, 600);
  }
  EXPECT_TRUE(cache.IsAssumed("default/a"));
  EXPECT_FALSE(cache.AssumePod(BoundPod(Pod("a", "600m"), "n1")).ok()) << "assumed twice";
  cache.ForgetPod("default/a");
  auto lock = cache.ReadLock();
  EXPECT_EQ(cache.FindNode("n1")->requested.milli_cpu, 0);
  EXPECT_FALSE(cache.Contains("default/a"));
}

TEST(SchedulerCacheTest, InformerConfirmsAnAssumedPodAndExpiryDropsLostBindings) {
  FakeTime t;
  SchedulerCache cache(t.Fn(), std::chrono::seconds(30));
  cache.AddOrUpdateNode(Node("n1", "2"));
  ASSERT_TRUE(cache.AssumePod(BoundPod(Pod("a", "1"), "n1")).ok());
  ASSERT_TRUE(cache.AssumePod(BoundPod(Pod("b", "1"), "n1")).ok());
  cache.FinishBinding("default/a");
  cache.FinishBinding("default/b");
  // An update of the still-unbound pod keeps the assumption.
  cache.AddOrUpdatePod(Pod("a", "1"));
  EXPECT_TRUE(cache.IsAssumed("default/a"));
  // The informer reports a bound: confirmed, no longer assumed, counted once.
  cache.AddOrUpdatePod(BoundPod(Pod("a", "1"), "n1"));
  EXPECT_FALSE(cache.IsAssumed("default/a"));
  EXPECT_TRUE(cache.Contains("default/a"));
  {
    auto lock = cache.ReadLock();
    EXPECT_EQ(cache.FindNode("n1")->requested.milli_cpu, 2000);
    EXPECT_EQ(cache.FindNode("n1")->pods.size(), 2u);
  }
  t.now += std::chrono::seconds(31);
  EXPECT_EQ(cache.CleanupExpiredAssumedPods(), 1);  // b's binding never showed up
  auto lock = cache.ReadLock();
  EXPECT_EQ(cache.FindNode("n1")->requested.milli_cpu, 1000);
}

TEST(SchedulerCacheTest, BoundPodMovesWithItsNodeAndNodeRemovalKeepsPods) {
  SchedulerCache cache;
  cache.AddOrUpdateNode(Node("n1"));
  cache.AddOrUpdatePod(BoundPod(Pod("a", "1"), "n1"));
  cache.RemoveNode("n1");
  {
    auto lock = cache.ReadLock();
    EXPECT_EQ(cache.Nodes().size(), 0u);
    EXPECT_EQ(cache.FindNode("n1"), nullptr);
  }
  cache.AddOrUpdateNode(Node("n1"));
  {
    auto lock = cache.ReadLock();
    ASSERT_NE(cache.FindNode("n1"), nullptr);
    EXPECT_EQ(cache.FindNode("n1")->requested.milli_cpu, 1000) << "pods of a re-added node still count";
  }
  cache.RemovePod("default/a");
  auto lock = cache.ReadLock();
  EXPECT_EQ(cache.FindNode("n1")->requested.milli_cpu, 0);
  EXPECT_EQ(cache.PodCount(), 0u);
}

// Many quick decisions in a row never put more on a node than it has:
// each decision sees the pods assumed before it.
TEST(SchedulerCacheTest, AssumedPodsPreventOvercommit) {
  SchedulerCache cache;
  for (int i = 0; i < 5; ++i) cache.AddOrUpdateNode(Node("n" + std::to_string(i), "1", "1Gi", "110"));
  SchedulerConfig config;
  config.parallelism = 2;
  ScheduleAlgorithm algorithm(config, BuildPlugins(config));
  int scheduled = 0;
  for (int i = 0; i < 30; ++i) {
    PodInfo pod = Pod("p" + std::to_string(i), "300m");
    ScheduleOutcome out = algorithm.Schedule(pod, cache);
    if (out.kind != ScheduleOutcome::Kind::kScheduled) continue;
    pod.node_name = out.node;
    ASSERT_TRUE(cache.AssumePod(pod).ok());
    ++scheduled;
  }
  EXPECT_EQ(scheduled, 15);  // 3 x 300m per 1-cpu node
  auto lock = cache.ReadLock();
  for (const NodeState* n : cache.Nodes()) {
    EXPECT_LE(n->requested.milli_cpu, n->node->allocatable.milli_cpu) << n->name();
    EXPECT_EQ(n->pods.size(), 3u) << n->name();
  }
}

// What the count index must hold: a full recount over the cached pods.
std::map<std::string, int64_t> Recount(const SchedulerCache& cache, const LabelSelector& selector,
                                       const std::string& key) {
  std::map<std::string, int64_t> out;
  for (const NodeState* n : cache.Nodes()) {
    auto label = n->node->labels.find(key);
    if (label == n->node->labels.end()) continue;
    for (const auto& p : n->pods) {
      if (p->terminating || p->namespace_name != "default" || !selector.Matches(p->labels)) continue;
      ++out[label->second];
    }
  }
  return out;
}

PodInfo Labeled(PodInfo p, const std::string& app) {
  p.labels["app"] = app;
  return p;
}

NodeInfo Zoned(const std::string& name, const std::string& zone) {
  NodeInfo n = Node(name);
  n.labels["zone"] = zone;
  return n;
}

TEST(SchedulerCacheTest, DomainCountIndexFollowsPodsAndNodes) {
  FakeTime t;
  SchedulerCache cache(t.Fn(), std::chrono::seconds(30));
  cache.AddOrUpdateNode(Zoned("n1", "a"));
  cache.AddOrUpdateNode(Zoned("n2", "a"));
  cache.AddOrUpdateNode(Zoned("n3", "b"));
  cache.AddOrUpdatePod(BoundPod(Labeled(Pod("w1"), "web"), "n1"));
  cache.AddOrUpdatePod(BoundPod(Labeled(Pod("d1"), "db"), "n3"));
  PodInfo other_ns = BoundPod(Labeled(Pod("w9"), "web"), "n3");
  other_ns.namespace_name = "other";
  cache.AddOrUpdatePod(other_ns);
  LabelSelector web;
  web.requirements.push_back({"app", SelectorRequirement::Op::kIn, {"web"}});
  auto check = [&](const std::string& step) {
    auto lock = cache.ReadLock();
    auto index = cache.MatchingPodsByDomain("default", web, "zone", /*skip_terminating=*/true);
    std::map<std::string, int64_t> got(index->by_domain.begin(), index->by_domain.end());
    EXPECT_EQ(got, Recount(cache, web, "zone")) << step;
  };
  check("built from the cached pods");
  {
    auto lock = cache.ReadLock();
    EXPECT_EQ(cache.MatchingPodsByDomain("default", web, "zone", true)->by_domain.at("a"), 1);
    EXPECT_EQ(cache.NodesWithLabel("zone"), 3u);
    EXPECT_EQ(cache.NodesByLabelValue("zone")->at("a"), 2);
  }
  ASSERT_TRUE(cache.AssumePod(BoundPod(Labeled(Pod("w2"), "web"), "n3")).ok());
  check("assumed pod counts");
  cache.AddOrUpdatePod(BoundPod(Labeled(Pod("w2"), "web"), "n3"));
  check("confirmed pod counts once");
  ASSERT_TRUE(cache.AssumePod(BoundPod(Labeled(Pod("w3"), "web"), "n2")).ok());
  cache.ForgetPod("default/w3");
  check("forgotten pod leaves");
  PodInfo relabeled = BoundPod(Labeled(Pod("w1"), "db"), "n1");
  cache.AddOrUpdatePod(relabeled);
  check("relabeled pod leaves");
  PodInfo terminating = BoundPod(Labeled(Pod("w4"), "web"), "n2");
  terminating.terminating = true;
  cache.AddOrUpdatePod(terminating);
  check("terminating pod does not count");
  cache.AddOrUpdatePod(BoundPod(Labeled(Pod("w5"), "web"), "n2"));
  cache.AddOrUpdateNode(Zoned("n2", "b"));
  check("node moved to another zone");
  {
    auto lock = cache.ReadLock();
    EXPECT_EQ(cache.NodesByLabelValue("zone")->at("b"), 2);
    EXPECT_EQ(cache.NodesByLabelValue("zone")->count("a"), 1u);
  }
  cache.RemoveNode("n3");
  check("node removed");
  cache.RemovePod("default/w5");
  check("pod removed");
  {
    auto lock = cache.ReadLock();
    EXPECT_TRUE(cache.MatchingPodsByDomain("default", web, "zone", true)->by_domain.empty());
    EXPECT_EQ(cache.NodesWithLabel("zone"), 2u);
  }
}

TEST(SchedulerCacheTest, AntiAffinityGroupsCountPodsPerNode) {
  SchedulerCache cache;
  cache.AddOrUpdateNode(Zoned("n1", "a"));
  cache.AddOrUpdateNode(Zoned("n2", "a"));
  PodAffinityTerm term;
  term.selector.requirements.push_back({"app", SelectorRequirement::Op::kIn, {"web"}});
  term.topology_key = "zone";
  auto with_anti = [&](const std::string& name, const std::string& node) {
    PodInfo p = BoundPod(Labeled(Pod(name), "web"), node);
    p.required_anti_affinity.push_back(term);
    return p;
  };
  cache.AddOrUpdatePod(with_anti("a", "n1"));
  ASSERT_TRUE(cache.AssumePod(with_anti("b", "n1")).ok());
  cache.AddOrUpdatePod(with_anti("c", "n2"));
  cache.AddOrUpdatePod(BoundPod(Labeled(Pod("plain"), "web"), "n2"));
  {
    auto lock = cache.ReadLock();
    const auto& groups = cache.RequiredAntiAffinityGroups();
    ASSERT_EQ(groups.size(), 1u) << "identical terms share a group";
    const auto& group = groups.begin()->second;
    EXPECT_EQ(group.by_node.at(cache.FindNode("n1")), 2);
    EXPECT_EQ(group.by_node.at(cache.FindNode("n2")), 1);
  }
  cache.ForgetPod("default/b");
  cache.RemovePod("default/c");
  {
    auto lock = cache.ReadLock();
    const auto& group = cache.RequiredAntiAffinityGroups().begin()->second;
    EXPECT_EQ(group.by_node.size(), 1u);
    EXPECT_EQ(group.by_node.at(cache.FindNode("n1")), 1);
  }
  cache.RemovePod("default/a");
  auto lock = cache.ReadLock();
  EXPECT_TRUE(cache.RequiredAntiAffinityGroups().empty());
}

}  // namespace
}  // namespace kelpie::scheduler
