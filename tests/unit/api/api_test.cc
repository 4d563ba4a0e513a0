#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "orchestrator/api/object_meta.h"
#include "orchestrator/api/resource_registry.h"
#include "orchestrator/api/selector.h"
#include "orchestrator/api/strategic_merge_patch.h"
#include "orchestrator/apiserver/request_info.h"

namespace kelpie {
namespace {

using nlohmann::json;

TEST(RequestInfoTest, ParsesResourcePaths) {
  auto i = apiserver::ParseRequestInfo("GET", "/api/v1/namespaces/ns1/pods/p1/status", false);
  EXPECT_TRUE(i.is_resource_request);
  EXPECT_EQ(i.group, "");
  EXPECT_EQ(i.version, "v1");
  EXPECT_EQ(i.namespace_name, "ns1");
  EXPECT_EQ(i.resource, "pods");
  EXPECT_EQ(i.name, "p1");
  EXPECT_EQ(i.subresource, "status");
  EXPECT_EQ(i.verb, "get");

  i = apiserver::ParseRequestInfo("GET", "/apis/apps/v1/deployments", true);
  EXPECT_EQ(i.group, "apps");
  EXPECT_EQ(i.resource, "deployments");
  EXPECT_EQ(i.verb, "watch");

  i = apiserver::ParseRequestInfo("GET", "/api/v1/namespaces/demo", false);
  EXPECT_EQ(i.resource, "namespaces");
  EXPECT_EQ(i.name, "demo");

  i = apiserver::ParseRequestInfo("PUT", "/api/v1/namespaces/demo/status", false);
  EXPECT_EQ(i.resource, "namespaces");
  EXPECT_EQ(i.name, "demo");
  EXPECT_EQ(i.subresource, "status");
  EXPECT_EQ(i.verb, "update");

  i = apiserver::ParseRequestInfo("DELETE", "/api/v1/namespaces/demo/configmaps", false);
  EXPECT_EQ(i.verb, "deletecollection");
  EXPECT_FALSE(apiserver::ParseRequestInfo("GET", "/apis/apps/v1", false).is_resource_request);
  EXPECT_FALSE(apiserver::ParseRequestInfo("GET", "/api", false).is_resource_request);
}

TEST(LabelSelectorTest, AllOperators) {
  json labels = {{"app", "web"}, {"tier", "front"}, {"version", "3"}};
  auto match = [&](const std::string& s) {
    auto sel = api::LabelSelector::Parse(s);
    EXPECT_TRUE(sel.ok()) << s << ": " << sel.status();
    return sel.ok() && sel->Matches(labels);
  };
  EXPECT_TRUE(match(""));
  EXPECT_TRUE(match("app=web"));
  EXPECT_TRUE(match("app==web,tier=front"));
  EXPECT_FALSE(match("app!=web"));
  EXPECT_TRUE(match("tier in (front, back)"));
  EXPECT_FALSE(match("tier notin (front)"));
  EXPECT_TRUE(match("app"));
  EXPECT_TRUE(match("!legacy"));
  EXPECT_FALSE(match("!app"));
  EXPECT_TRUE(match("version>2"));
  EXPECT_FALSE(match("version<3"));
  EXPECT_TRUE(match("example.com/team notin (a)"));
}

TEST(LabelSelectorTest, BadSelectorsAreErrors) {
  for (const char* bad : {"app in (a", "-bad=x", "a=b c", "x in ()", "v>abc", "app foo (a)", ",", "a=x,,b=y"}) {
    auto sel = api::LabelSelector::Parse(bad);
    EXPECT_FALSE(sel.ok()) << bad;
    if (!sel.ok()) {
      EXPECT_NE(sel.status().message().find("unable to parse requirement"), std::string::npos);
    }
  }
}

TEST(FieldSelectorTest, SupportedFieldsOnly) {
  auto fields = api::SelectableFields("", "pods");
  auto sel = api::FieldSelector::Parse("spec.nodeName=n1,status.phase!=Failed", fields);
  ASSERT_TRUE(sel.ok());
  json pod = {{"spec", {{"nodeName", "n1"}}}, {"status", {{"phase", "Running"}}}};
  EXPECT_TRUE(sel->Matches(pod));
  pod["status"]["phase"] = "Failed";
  EXPECT_FALSE(sel->Matches(pod));
  auto bad = api::FieldSelector::Parse("spec.bogus=1", fields);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "field label not supported: spec.bogus");
  EXPECT_FALSE(api::FieldSelector::Parse("metadata.name", fields).ok());
}

TEST(ObjectMetaTest, NamesLabelsAndAnnotations) {
  const auto& pods = *api::ResourceRegistry::Builtin().Find("", "v1", "pods");
  const auto& ns = *api::ResourceRegistry::Builtin().Find("", "v1", "namespaces");
  EXPECT_TRUE(api::ValidateObjectMeta({{"metadata", {{"name", "web-1.a"}}}}, pods, true).empty());
  EXPECT_FALSE(api::ValidateObjectMeta({{"metadata", {{"name", "web-1.a"}}}}, ns, true).empty());
  EXPECT_FALSE(api::ValidateObjectMeta({{"metadata", {{"name", "Web"}}}}, pods, true).empty());
  EXPECT_TRUE(api::ValidateObjectMeta({{"metadata", {{"generateName", "web-"}}}}, pods, true).empty());
  EXPECT_FALSE(api::ValidateObjectMeta({{"metadata", {{"generateName", "web-"}}}}, pods, false).empty());
  auto causes = api::ValidateObjectMeta(
      {{"metadata", {{"name", "ok"}, {"labels", {{"bad key!", "v"}, {"k", "-bad"}}}}}}, pods, true);
  ASSERT_EQ(causes.size(), 2u);
  EXPECT_EQ(causes[0].field, "metadata.labels");
}

TEST(ObjectMetaTest, ResourceVersionSplice) {
  EXPECT_EQ(api::WithResourceVersion(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}})", 42),
            R"({"apiVersion":"v1","kind":"Pod","metadata":{"resourceVersion":"42","name":"a"}})");
  EXPECT_EQ(api::WithResourceVersion(R"({"kind":"X","metadata":{}})", 7),
            R"({"kind":"X","metadata":{"resourceVersion":"7"}})");
  EXPECT_EQ(api::WithResourceVersion(R"({"kind":"X"})", 7), R"({"metadata":{"resourceVersion":"7"},"kind":"X"})");
  json parsed = json::parse(api::WithResourceVersion(R"({"metadata":{"name":"a"},"spec":{}})", 9));
  EXPECT_EQ(parsed["metadata"]["resourceVersion"], "9");
  EXPECT_EQ(api::NewUid().size(), 36u);
  EXPECT_EQ(api::RandomNameSuffix().size(), 5u);
}

TEST(StrategicMergePatchTest, ContainersMergeByName) {
  json original = {{"spec",
                    {{"containers",
                      {{{"name", "a"}, {"image", "a:1"}, {"ports", {{{"containerPort", 80}}}}},
                       {{"name", "b"}, {"image", "b:1"}}}},
                     {"tolerations", {{{"key", "x"}}}}}},
                   {"metadata", {{"labels", {{"keep", "1"}, {"drop", "1"}}}, {"finalizers", {"f1"}}}}};
  json patch = {{"spec",
                 {{"containers", {{{"name", "a"}, {"image", "a:2"}}, {{"name", "c"}, {"image", "c:1"}}}},
                  {"tolerations", {{{"key", "y"}}}}}},
                {"metadata", {{"labels", {{"drop", nullptr}, {"new", "2"}}}, {"finalizers", {"f2"}}}}};
  auto merged = api::StrategicMergePatch(original, patch);
  ASSERT_TRUE(merged.ok()) << merged.status();
  const json& c = (*merged)["spec"]["containers"];
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0]["image"], "a:2");
  EXPECT_EQ(c[0]["ports"][0]["containerPort"], 80);  // kept: merged, not replaced
  EXPECT_EQ(c[1]["name"], "b");
  EXPECT_EQ(c[2]["name"], "c");
  EXPECT_EQ((*merged)["spec"]["tolerations"].size(), 1u);  // no merge key: replaced
  EXPECT_EQ((*merged)["spec"]["tolerations"][0]["key"], "y");
  EXPECT_EQ((*merged)["metadata"]["labels"], (json{{"keep", "1"}, {"new", "2"}}));
  EXPECT_EQ((*merged)["metadata"]["finalizers"], (json{"f1", "f2"}));
}

TEST(StrategicMergePatchTest, Directives) {
  json original = {{"containers", {{{"name", "a"}}, {{"name", "b"}}}}, {"m", {{"x", 1}, {"y", 2}}},
                   {"finalizers", {"f1", "f2"}}};
  json patch = {{"containers", {{{"name", "a"}, {"$patch", "delete"}}}},
                {"m", {{"$patch", "replace"}, {"z", 3}}},
                {"$deleteFromPrimitiveList/finalizers", {"f1"}}};
  auto merged = api::StrategicMergePatch(original, patch);
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ((*merged)["containers"], (json{{{"name", "b"}}}));
  EXPECT_EQ((*merged)["m"], (json{{"z", 3}}));
  EXPECT_EQ((*merged)["finalizers"], (json{"f2"}));
  EXPECT_FALSE(api::StrategicMergePatch(original, {{"containers", {{{"image", "x"}}}}}).ok());
}

}  // namespace
}  // namespace kelpie
