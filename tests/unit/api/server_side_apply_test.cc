// Server-side apply: field sets in FieldsV1 form computed from the schema
// (keyed lists, sets, atomic types, deduced fields), the typed merge, removal
// of fields a manager stops applying, conflicts and force, and the Update
// entries of ordinary writes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "orchestrator/api/schema/field_set.h"
#include "orchestrator/api/schema/schema.h"
#include "orchestrator/api/schema/structured_merge.h"
#include "orchestrator/apiserver/field_manager.h"

namespace kelpie {
namespace {

using api::schema::FieldSet;
using api::schema::Schema;
using api::schema::StructuredMerge;
using apiserver::FieldManager;
using nlohmann::json;

const Schema& S() { return Schema::Builtin(); }
StructuredMerge DeploymentTyped() { return StructuredMerge(S(), S().RootType("apps", "v1", "Deployment")); }
FieldManager Deployments() { return FieldManager(S(), S().RootType("apps", "v1", "Deployment")); }

json MakeDeployment(int replicas, const std::string& image, json labels = {{"app", "web"}}) {
  json d = json::parse(R"({"apiVersion":"apps/v1","kind":"Deployment",
    "metadata":{"name":"web","namespace":"default"},
    "spec":{"selector":{"matchLabels":{"app":"web"}},
      "template":{"metadata":{"labels":{"app":"web"}},
        "spec":{"containers":[{"name":"web","ports":[{"containerPort":80}]}]}}}})");
  d["metadata"]["labels"] = labels;
  d["spec"]["replicas"] = replicas;
  d["spec"]["template"]["spec"]["containers"][0]["image"] = image;
  return d;
}

FieldManager::Options As(const std::string& manager, bool force = false) {
  FieldManager::Options o;
  o.manager = manager;
  o.api_version = "apps/v1";
  o.has_status_subresource = true;
  o.force = force;
  o.now = "2026-01-02T03:04:05Z";
  return o;
}

const json* Entry(const json& object, const std::string& manager, const std::string& operation) {
  for (const auto& e : object["metadata"]["managedFields"]) {
    if (e["manager"] == manager && e["operation"] == operation) return &e;
  }
  return nullptr;
}

TEST(FieldSetTest, FieldsV1RoundTripAndSetOperations) {
  json v1 = json::parse(R"({"f:metadata":{"f:labels":{".":{},"f:a":{}}},
                           "f:spec":{"f:list":{"k:{\"name\":\"x\"}":{".":{},"f:v":{}}},"f:tags":{"v:\"t\"":{}}}})");
  auto set = FieldSet::FromFieldsV1(v1);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->ToFieldsV1(), v1);
  EXPECT_TRUE(set->Has({"f:metadata", "f:labels"}));
  EXPECT_FALSE(set->Has({"f:metadata"}));
  EXPECT_TRUE(set->HasAtOrBelow({"f:spec", "f:list"}));
  EXPECT_EQ(set->Members().size(), 5u);

  FieldSet other;
  other.Insert({"f:metadata", "f:labels", "f:a"});
  other.Insert({"f:spec", "f:replicas"});
  EXPECT_EQ(set->Intersection(other).ToFieldsV1(), json::parse(R"({"f:metadata":{"f:labels":{"f:a":{}}}})"));
  EXPECT_EQ(set->Difference(other).Members().size(), 4u);
  EXPECT_EQ(set->Union(other).Members().size(), 6u);
  EXPECT_TRUE(set->Difference(*set).Empty());

  EXPECT_EQ(FieldSet::PathString({"f:spec", "f:list", "k:{\"name\":\"x\"}", "f:v"}), ".spec.list[name=\"x\"].v");
  EXPECT_EQ(FieldSet::PathString({"f:ports", "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"}),
            ".ports[containerPort=80,protocol=\"TCP\"]");
  EXPECT_EQ(FieldSet::PathString({"f:metadata", "f:finalizers", "v:\"a\""}), ".metadata.finalizers[=\"a\"]");

  EXPECT_FALSE(FieldSet::FromFieldsV1(json::parse(R"({"x:bad":{}})")).ok());
  EXPECT_FALSE(FieldSet::FromFieldsV1(json::parse(R"({"f:a":1})")).ok());
}

TEST(StructuredMergeTest, FieldSetOfAnAppliedDeploymentIsKubernetes) {
  json config = MakeDeployment(2, "nginx:1");
  config.erase("apiVersion");
  config.erase("kind");
  config["metadata"].erase("name");
  config["metadata"].erase("namespace");
  auto set = DeploymentTyped().ToFieldSet(config);
  ASSERT_TRUE(set.ok()) << set.status();
  // What kube-apiserver records for the same configuration: the selector
  // (an atomic LabelSelector) is one field; containers are keyed by name,
  // ports by containerPort and the defaulted protocol; items carry ".".
  EXPECT_EQ(set->ToFieldsV1(), json::parse(R"({
    "f:metadata":{"f:labels":{"f:app":{}}},
    "f:spec":{"f:replicas":{},"f:selector":{},
      "f:template":{"f:metadata":{"f:labels":{"f:app":{}}},
        "f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{},
          "f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}})"))
      << set->ToFieldsV1().dump(2);
}

TEST(StructuredMergeTest, SetsAtomicListsAndDeducedFields) {
  StructuredMerge pods(S(), S().RootType("", "v1", "Pod"));
  json pod = json::parse(R"({"metadata":{"finalizers":["a","b"]},
    "spec":{"containers":[{"name":"c","command":["sh","-c"]}],"affinity":{"nodeAffinity":{"x":[1]}}}})");
  auto set = pods.ToFieldSet(pod);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_TRUE(set->Has({"f:metadata", "f:finalizers", "v:\"a\""}));
  EXPECT_TRUE(set->Has({"f:spec", "f:containers", "k:{\"name\":\"c\"}", "f:command"}));  // atomic list
  EXPECT_FALSE(set->HasAtOrBelow({"f:spec", "f:containers", "k:{\"name\":\"c\"}", "f:command", "i:0"}));
  // affinity is not modelled: objects are owned key by key, lists whole.
  EXPECT_TRUE(set->Has({"f:spec", "f:affinity", "f:nodeAffinity", "f:x"}));

  // A kind without schema is deduced throughout.
  StructuredMerge untyped(S(), nullptr);
  auto deduced = untyped.ToFieldSet(json::parse(R"({"spec":{"a":{"b":1},"l":[{"name":"x"}]}})"));
  ASSERT_TRUE(deduced.ok());
  EXPECT_EQ(deduced->ToFieldsV1(), json::parse(R"({"f:spec":{".":{},"f:a":{".":{},"f:b":{}},"f:l":{}}})"));

  // A keyed list item without its key is refused.
  auto bad = pods.ToFieldSet(json::parse(R"({"spec":{"containers":[{"image":"x"}]}})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("omits key field \"name\""), std::string::npos);
}

TEST(StructuredMergeTest, MergeFollowsListTypes) {
  StructuredMerge pods(S(), S().RootType("", "v1", "Pod"));
  json live = json::parse(R"({"metadata":{"finalizers":["a"],"labels":{"x":"1"}},
    "spec":{"containers":[{"name":"a","image":"a:1","command":["old"]},{"name":"b","image":"b:1"}]}})");
  json config = json::parse(R"({"metadata":{"finalizers":["b"],"labels":{"y":"2"}},
    "spec":{"containers":[{"name":"c","image":"c:1"},{"name":"b","image":"b:2"},{"name":"a","command":["new"]}]}})");
  auto merged = pods.Merge(live, config);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ((*merged)["metadata"]["finalizers"], json::parse(R"(["a","b"])"));
  EXPECT_EQ((*merged)["metadata"]["labels"], json::parse(R"({"x":"1","y":"2"})"));
  // Items shared by both come in the configuration's order; a's image stays,
  // its atomic command is replaced.
  EXPECT_EQ((*merged)["spec"]["containers"], json::parse(R"([{"name":"c","image":"c:1"},{"name":"b","image":"b:2"},
    {"name":"a","image":"a:1","command":["new"]}])"));

  // Null removes.
  auto removed = pods.Merge(live, json::parse(R"({"metadata":{"labels":{"x":null}}})"));
  ASSERT_TRUE(removed.ok());
  EXPECT_FALSE((*removed)["metadata"]["labels"].contains("x"));
}

TEST(StructuredMergeTest, CompareAndRemoveFields) {
  StructuredMerge typed = DeploymentTyped();
  json before = MakeDeployment(1, "a:1");
  json after = MakeDeployment(3, "a:1", {{"app", "web"}, {"tier", "front"}});
  after["metadata"]["labels"].erase("app");
  auto cmp = typed.Compare(before, after);
  ASSERT_TRUE(cmp.ok());
  EXPECT_TRUE(cmp->modified.Has({"f:spec", "f:replicas"}));
  EXPECT_TRUE(cmp->added.Has({"f:metadata", "f:labels", "f:tier"}));
  EXPECT_TRUE(cmp->removed.Has({"f:metadata", "f:labels", "f:app"}));
  EXPECT_EQ(cmp->modified.Members().size(), 1u);

  FieldSet drop;
  drop.Insert({"f:metadata", "f:labels", "f:tier"});
  drop.Insert({"f:spec", "f:template", "f:spec", "f:containers", "k:{\"name\":\"web\"}",
               "f:ports", "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"});
  json pruned = typed.RemoveFields(after, drop);
  // Emptied containers go with the removed field.
  EXPECT_FALSE(pruned["metadata"].contains("labels"));
  EXPECT_FALSE(pruned["spec"]["template"]["spec"]["containers"][0].contains("ports"));
  EXPECT_EQ(pruned["spec"]["template"]["spec"]["containers"][0]["image"], "a:1");
}

TEST(FieldManagerTest, ApplyCreatesWithAnApplyEntry) {
  api::ApiError error;
  auto created = Deployments().Apply(nullptr, MakeDeployment(2, "nginx:1"), As("kubectl"), &error);
  ASSERT_TRUE(created.ok()) << error.message;
  const auto& fields = (*created)["metadata"]["managedFields"];
  ASSERT_EQ(fields.size(), 1u);
  EXPECT_EQ(fields[0]["manager"], "kubectl");
  EXPECT_EQ(fields[0]["operation"], "Apply");
  EXPECT_EQ(fields[0]["apiVersion"], "apps/v1");
  EXPECT_EQ(fields[0]["time"], "2026-01-02T03:04:05Z");
  EXPECT_EQ(fields[0]["fieldsType"], "FieldsV1");
  EXPECT_FALSE(fields[0].contains("subresource"));
  EXPECT_TRUE(fields[0]["fieldsV1"]["f:spec"].contains("f:replicas"));
  EXPECT_EQ((*created)["spec"]["replicas"], 2);
}

TEST(FieldManagerTest, FieldsDroppedFromTheConfigurationAreRemovedUnlessSomeoneElseOwnsThem) {
  FieldManager fm = Deployments();
  api::ApiError error;
  json config = MakeDeployment(2, "nginx:1", {{"app", "web"}, {"tier", "front"}, {"team", "a"}});
  auto live = fm.Apply(nullptr, config, As("kubectl"), &error);
  ASSERT_TRUE(live.ok()) << error.message;
  // Another writer changes the team label: it owns it now.
  json edited = *live;
  edited["metadata"]["labels"]["team"] = "b";
  json after_edit = fm.Update(&*live, edited, As("kubectl-edit"));
  ASSERT_NE(Entry(after_edit, "kubectl-edit", "Update"), nullptr);

  // The applier drops both labels: tier (only its own) goes, team (now
  // kubectl-edit's) stays.
  json next = MakeDeployment(2, "nginx:1");
  auto applied = fm.Apply(&after_edit, next, As("kubectl"), &error);
  ASSERT_TRUE(applied.ok()) << error.message;
  EXPECT_EQ((*applied)["metadata"]["labels"], json::parse(R"({"app":"web","team":"b"})"));

  // Dropping a container item removes it, with its fields.
  json two = MakeDeployment(2, "nginx:1");
  two["spec"]["template"]["spec"]["containers"].push_back({{"name", "sidecar"}, {"image", "busybox"}});
  auto with_two = fm.Apply(&*applied, two, As("kubectl"), &error);
  ASSERT_TRUE(with_two.ok()) << error.message;
  EXPECT_EQ((*with_two)["spec"]["template"]["spec"]["containers"].size(), 2u);
  auto back = fm.Apply(&*with_two, MakeDeployment(2, "nginx:1"), As("kubectl"), &error);
  ASSERT_TRUE(back.ok()) << error.message;
  EXPECT_EQ((*back)["spec"]["template"]["spec"]["containers"].size(), 1u);
}

TEST(FieldManagerTest, ConflictsWithAnotherManagerAndForce) {
  FieldManager fm = Deployments();
  api::ApiError error;
  // Created and scaled by client-side apply (an Update entry).
  json created = fm.Update(nullptr, MakeDeployment(3, "nginx:1"), As("kubectl-client-side-apply"));
  ASSERT_NE(Entry(created, "kubectl-client-side-apply", "Update"), nullptr);

  // Same values: no conflict, both own the fields.
  auto shared = fm.Apply(&created, MakeDeployment(3, "nginx:1"), As("kubectl"), &error);
  ASSERT_TRUE(shared.ok()) << error.message;
  ASSERT_NE(Entry(*shared, "kubectl", "Apply"), nullptr);
  EXPECT_TRUE((*Entry(*shared, "kubectl-client-side-apply", "Update"))["fieldsV1"]["f:spec"].contains("f:replicas"));

  // A different value for a field the other manager owns: 409.
  auto conflict = fm.Apply(&*shared, MakeDeployment(5, "nginx:1"), As("kubectl"), &error);
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(error.code, 409);
  EXPECT_EQ(error.reason, "Conflict");
  EXPECT_EQ(error.message,
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas");
  ASSERT_EQ(error.causes.size(), 1u);
  EXPECT_EQ(error.causes[0].reason, "FieldManagerConflict");
  EXPECT_EQ(error.causes[0].message, "conflict with \"kubectl-client-side-apply\" using apps/v1");
  EXPECT_EQ(error.causes[0].field, ".spec.replicas");
  json status = json::parse(error.ToJson());
  EXPECT_EQ(status["details"]["causes"][0]["reason"], "FieldManagerConflict");

  // Two fields: kube-apiserver's multi-conflict wording.
  error = {};
  auto two = fm.Apply(&*shared, MakeDeployment(5, "nginx:2"), As("kubectl"), &error);
  ASSERT_FALSE(two.ok());
  EXPECT_EQ(error.message,
            "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n"
            "- .spec.replicas\n- .spec.template.spec.containers[name=\"web\"].image");

  // Force takes the fields over.
  error = {};
  auto forced = fm.Apply(&*shared, MakeDeployment(5, "nginx:1"), As("kubectl", /*force=*/true), &error);
  ASSERT_TRUE(forced.ok()) << error.message;
  EXPECT_EQ((*forced)["spec"]["replicas"], 5);
  EXPECT_FALSE((*Entry(*forced, "kubectl-client-side-apply", "Update"))["fieldsV1"]["f:spec"].contains("f:replicas"));
  EXPECT_TRUE((*Entry(*forced, "kubectl", "Apply"))["fieldsV1"]["f:spec"].contains("f:replicas"));
  // ... so the next apply of the same change conflicts no more.
  auto again = fm.Apply(&*forced, MakeDeployment(6, "nginx:1"), As("kubectl"), &error);
  EXPECT_TRUE(again.ok()) << error.message;
}

TEST(FieldManagerTest, ConflictWithAnotherApplierNamesItWithoutVersion) {
  FieldManager fm = Deployments();
  api::ApiError error;
  auto first = fm.Apply(nullptr, MakeDeployment(2, "nginx:1"), As("team-a"), &error);
  ASSERT_TRUE(first.ok());
  auto second = fm.Apply(&*first, MakeDeployment(4, "nginx:1"), As("team-b"), &error);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(error.message, "Apply failed with 1 conflict: conflict with \"team-a\": .spec.replicas");
}

TEST(FieldManagerTest, UpdatesTakeOwnershipOfWhatTheyChange) {
  FieldManager fm = Deployments();
  api::ApiError error;
  auto applied = fm.Apply(nullptr, MakeDeployment(2, "nginx:1"), As("kubectl"), &error);
  ASSERT_TRUE(applied.ok());
  json edited = *applied;
  edited["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2";
  json after = fm.Update(&*applied, edited, As("kubectl-edit"));
  const json* edit = Entry(after, "kubectl-edit", "Update");
  ASSERT_NE(edit, nullptr);
  EXPECT_EQ((*edit)["apiVersion"], "apps/v1");
  EXPECT_EQ((*edit)["fieldsV1"], json::parse(R"({"f:spec":{"f:template":{"f:spec":{"f:containers":{
      "k:{\"name\":\"web\"}":{"f:image":{}}}}}}})"));
  EXPECT_FALSE((*Entry(after, "kubectl", "Apply"))["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
                   ["k:{\"name\":\"web\"}"]
                       .contains("f:image"));
  // Re-applying the old image now conflicts with the editor.
  auto conflict = fm.Apply(&after, MakeDeployment(2, "nginx:1"), As("kubectl"), &error);
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(error.causes.at(0).message, "conflict with \"kubectl-edit\" using apps/v1");

  // Apply entries sort before Update entries.
  EXPECT_EQ(after["metadata"]["managedFields"][0]["operation"], "Apply");

  // `managedFields: [{}]` clears them.
  json cleared = after;
  cleared["metadata"]["managedFields"] = json::array({json::object()});
  EXPECT_FALSE(fm.Update(&after, cleared, As("kubectl-patch"))["metadata"].contains("managedFields"));

  // An object nobody applied to: its fields belong to before-first-apply.
  json legacy = MakeDeployment(3, "nginx:1");
  auto first = fm.Apply(&legacy, MakeDeployment(4, "nginx:1"), As("kubectl"), &error);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(error.causes.at(0).message, "conflict with \"before-first-apply\" using apps/v1");
}

TEST(FieldManagerTest, MainResourceOwnsNoStatus) {
  FieldManager fm = Deployments();
  api::ApiError error;
  json config = MakeDeployment(1, "a");
  config["status"] = {{"replicas", 4}};
  auto applied = fm.Apply(nullptr, config, As("kubectl"), &error);
  ASSERT_TRUE(applied.ok());
  EXPECT_FALSE((*Entry(*applied, "kubectl", "Apply"))["fieldsV1"].contains("f:status"));

  FieldManager::Options status = As("kube-controller-manager");
  status.subresource = "status";
  json next = *applied;
  next["status"] = {{"replicas", 1}};
  json after = fm.Update(&*applied, next, status);
  const json* entry = Entry(after, "kube-controller-manager", "Update");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ((*entry)["subresource"], "status");
  EXPECT_EQ((*entry)["fieldsV1"], json::parse(R"({"f:status":{"f:replicas":{}}})"));
}

TEST(FieldManagerTest, ManagerNames) {
  EXPECT_EQ(FieldManager::ManagerFromUserAgent("kubectl-client-side-apply/v1.32.0 (linux/amd64) kubernetes/70d3cc9"),
            "kubectl-client-side-apply");
  EXPECT_EQ(FieldManager::ManagerFromUserAgent("kubectl-edit/v1.32.0"), "kubectl-edit");
  EXPECT_EQ(FieldManager::ManagerFromUserAgent(std::string(200, 'x')).size(), 128u);
  EXPECT_EQ(FieldManager::ValidateManagerName("kubectl"), "");
  EXPECT_NE(FieldManager::ValidateManagerName(std::string(129, 'x')), "");
  EXPECT_NE(FieldManager::ValidateManagerName("bad\xff"), "");
  EXPECT_NE(FieldManager::ValidateManagerName("tab\there"), "");
  EXPECT_EQ(FieldManager::ValidateManagerName("équipe"), "");
  // Names recorded for other writes keep only what can be stored.
  EXPECT_EQ(FieldManager::PrintableManager("ok\xff\x01-\xc3\xa9"), "ok-\xc3\xa9");
  EXPECT_EQ(FieldManager::ManagerFromUserAgent("bad\xfe/1.0"), "bad");
}

}  // namespace
}  // namespace kelpie
