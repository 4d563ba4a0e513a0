#include "orchestrator/controllers/object_store.h"

#include <gtest/gtest.h>

namespace kelpie::controllers {
namespace {

using nlohmann::json;

json Pod(const std::string& ns, const std::string& name, const std::string& node) {
  json p = {{"metadata", {{"namespace", ns}, {"name", name}}}, {"spec", json::object()}};
  if (!node.empty()) p["spec"]["nodeName"] = node;
  return p;
}

TEST(ObjectStoreTest, KeysAndUpsertRemove) {
  ObjectStore s;
  EXPECT_EQ(ObjectKey(Pod("ns", "a", "")), "ns/a");
  EXPECT_EQ(ObjectKey(json{{"metadata", {{"name", "node1"}}}}), "node1");
  EXPECT_FALSE(s.Upsert(Pod("ns", "a", "")).has_value());
  auto old = s.Upsert(Pod("ns", "a", "n1"));
  ASSERT_TRUE(old.has_value());
  EXPECT_FALSE((*old)["spec"].contains("nodeName"));
  EXPECT_EQ(s.Size(), 1u);
  EXPECT_EQ((*s.Get("ns/a"))["spec"]["nodeName"], "n1");
  EXPECT_TRUE(s.Remove("ns/a").has_value());
  EXPECT_FALSE(s.Get("ns/a").has_value());
  EXPECT_FALSE(s.Remove("ns/a").has_value());
}

TEST(ObjectStoreTest, IndexFollowsUpdatesAndDeletes) {
  ObjectStore s;
  s.AddIndexer("node", PodNodeNameIndex);
  s.Upsert(Pod("ns", "a", "n1"));
  s.Upsert(Pod("ns", "b", "n1"));
  s.Upsert(Pod("ns", "c", ""));
  EXPECT_EQ(s.ByIndex("node", "n1").size(), 2u);
  s.Upsert(Pod("ns", "a", "n2"));  // moved
  EXPECT_EQ(s.ByIndex("node", "n1").size(), 1u);
  ASSERT_EQ(s.ByIndex("node", "n2").size(), 1u);
  EXPECT_EQ(s.ByIndex("node", "n2")[0]["metadata"]["name"], "a");
  s.Remove("ns/b");
  EXPECT_TRUE(s.ByIndex("node", "n1").empty());
  EXPECT_TRUE(s.ByIndex("unknown", "x").empty());
  // An indexer added later indexes what is already there.
  s.AddIndexer("namespace", NamespaceIndex);
  EXPECT_EQ(s.ByIndex("namespace", "ns").size(), 2u);
}

}  // namespace
}  // namespace kelpie::controllers
