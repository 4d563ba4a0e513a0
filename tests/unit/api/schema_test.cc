#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "orchestrator/api/resource_registry.h"
#include "orchestrator/api/schema/embedded_schema.h"
#include "orchestrator/api/schema/schema.h"
#include "orchestrator/api/schema/schema_validation.h"

namespace kelpie::api::schema {
namespace {

using nlohmann::json;

TEST(SchemaTest, BuiltinLoadsAndEveryReferenceResolves) {
  const Schema& schema = Schema::Builtin();
  ASSERT_FALSE(schema.kinds().empty());
  for (const auto& kind : schema.kinds()) {
    EXPECT_NE(schema.FindType(kind.root_type), nullptr) << kind.kind;
    EXPECT_FALSE(kind.columns.empty()) << kind.kind;
    EXPECT_EQ(kind.columns[0].name, "NAME") << kind.kind;
  }
  for (const auto& [name, type] : schema.types()) {
    for (const auto& f : type.fields) {
      if (!f.type.object.empty()) {
        EXPECT_NE(schema.FindType(f.type.object), nullptr) << name << "." << f.json_name;
      }
    }
  }
}

TEST(SchemaTest, EveryModelledKindIsServed) {
  for (const auto& kind : Schema::Builtin().kinds()) {
    EXPECT_NE(ResourceRegistry::Builtin().FindKind(kind.group, kind.kind), nullptr) << kind.kind;
  }
}

TEST(SchemaTest, FieldFacts) {
  const Schema& schema = Schema::Builtin();
  const TypeDef* spec = schema.FindType("core/v1.PodSpec");
  ASSERT_NE(spec, nullptr);
  const Field* containers = spec->FindField("containers");
  ASSERT_NE(containers, nullptr);
  EXPECT_EQ(containers->type.kind, ValueKind::kList);
  EXPECT_EQ(containers->type.object, "core/v1.Container");
  EXPECT_EQ(containers->proto_path, std::vector<int>{2});
  EXPECT_TRUE(containers->required);
  EXPECT_EQ(containers->patch_strategy, "merge");
  EXPECT_EQ(containers->patch_merge_key, "name");
  EXPECT_EQ(containers->list_type, "map");
  EXPECT_EQ(containers->map_keys, std::vector<std::string>{"name"});
  EXPECT_EQ(spec->FindField("restartPolicy")->default_value, "Always");

  const Field* empty_dir = schema.FindType("core/v1.Volume")->FindField("emptyDir");
  EXPECT_EQ(empty_dir->proto_path, (std::vector<int>{2, 2}));
  const Field* deployment_template = schema.FindType("apps/v1.DeploymentSpec")->FindField("template");
  EXPECT_EQ(deployment_template->type.object, "core/v1.PodTemplateSpec");
  const Field* labels = schema.FindType("meta/v1.ObjectMeta")->FindField("labels");
  EXPECT_EQ(labels->type.kind, ValueKind::kMap);
  EXPECT_EQ(labels->type.element, ValueKind::kString);
  EXPECT_EQ(labels->proto_path, std::vector<int>{11});

  const KindDef* pods = schema.FindKind("", "v1", "Pod");
  ASSERT_NE(pods, nullptr);
  std::vector<std::string> headers, wide;
  for (const auto& c : pods->columns) (c.priority == 0 ? headers : wide).push_back(c.name);
  EXPECT_EQ(headers, (std::vector<std::string>{"NAME", "READY", "STATUS", "RESTARTS", "AGE"}));
  EXPECT_EQ(wide, (std::vector<std::string>{"IP", "NODE", "NOMINATED NODE", "READINESS GATES"}));
}

TEST(SchemaTest, DanglingReferenceIsALoadError) {
  auto loaded = Schema::Load({{"x.yaml", "group: x\nversion: v1\ntypes:\n  A:\n    fields:\n      b: \"Missing #1\"\n"}});
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("unknown type \"Missing\""), std::string::npos) << loaded.status();
}

TEST(SchemaTest, BadFieldLinesAreLoadErrors) {
  for (const char* line : {"string #x", "string bogus", "[]string list=map", "string list=atomic", "string #0"}) {
    auto loaded = Schema::Load(
        {{"x.yaml", std::string("group: x\nversion: v1\ntypes:\n  A:\n    fields:\n      b: \"") + line + "\"\n"}});
    EXPECT_FALSE(loaded.ok()) << line;
  }
  EXPECT_FALSE(Schema::Load({{"x.yaml", "group: [unclosed"}}).ok());
  EXPECT_FALSE(Schema::Load({{"x.yaml", "types: {}"}}).ok());
}

TEST(UnknownFieldsTest, ReportsPathsAndDropsOnRequest) {
  const Schema& schema = Schema::Builtin();
  const TypeDef* pod = schema.RootType("", "v1", "Pod");
  ASSERT_NE(pod, nullptr);
  json object = json::parse(R"({
    "apiVersion": "v1", "kind": "Pod", "foo": 1,
    "metadata": {"name": "p", "labels": {"anything": "goes"}, "bogus": true},
    "spec": {"containers": [{"name": "c", "image": "busybox", "lifecycle": {},
                             "resources": {"limits": {"cpu": "1"}, "limitz": {}}}],
             "affinity": {"nodeAffinity": {}},
             "volumes": [{"name": "v", "emptyDir": {"medum": "Memory"}}]}
  })");
  json copy = object;
  auto unknown = FindUnknownFields(schema, *pod, copy, false);
  std::sort(unknown.begin(), unknown.end());
  EXPECT_EQ(unknown, (std::vector<std::string>{"foo", "metadata.bogus", "spec.containers[0].resources.limitz",
                                               "spec.volumes[0].emptyDir.medum"}));
  EXPECT_EQ(copy, object);  // reporting alone changes nothing

  FindUnknownFields(schema, *pod, copy, true);
  EXPECT_FALSE(copy.contains("foo"));
  EXPECT_FALSE(copy["metadata"].contains("bogus"));
  EXPECT_FALSE(copy["spec"]["containers"][0]["resources"].contains("limitz"));
  // Fields of types that are not fully modelled yet stay as sent.
  EXPECT_TRUE(copy["spec"]["containers"][0].contains("lifecycle"));
  EXPECT_TRUE(copy["spec"].contains("affinity"));
  EXPECT_EQ(copy["spec"]["containers"][0]["resources"]["limits"]["cpu"], "1");
  EXPECT_TRUE(FindUnknownFields(schema, *pod, copy, false).empty());
}

TEST(ValidateStructureTest, TableOfCauses) {
  const Schema& schema = Schema::Builtin();
  struct Case {
    const char* kind;
    const char* group;
    const char* body;
    std::vector<std::string> expected;  // "field: message"
  };
  const std::vector<Case> cases = {
      {"Pod", "", R"({"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}})", {}},
      {"Pod", "", R"({"metadata":{"name":"p"},"spec":{"containers":[]}})", {"spec.containers: Required value"}},
      {"Pod", "", R"({"metadata":{"name":"p"},"spec":{"containers":[{"image":"i"}]}})",
       {"spec.containers[0].name: Required value"}},
      {"Pod", "", R"({"spec":{"containers":[{"name":"c"}],"restartPolicy":"Sometimes"}})",
       {"spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""}},
      {"Pod", "", R"({"spec":{"containers":[{"name":"c","ports":[{"containerPort":"80"}]}]}})",
       {"spec.containers[0].ports[0].containerPort: Invalid value: \"80\": must be of type int32, not string"}},
      {"Pod", "", R"({"spec":{"containers":[{"name":"c","ports":[{"containerPort":4294967296}]}]}})",
       {"spec.containers[0].ports[0].containerPort: Invalid value: 4294967296: must be of type int32, not number"}},
      {"Pod", "", R"({"metadata":{"labels":{"a":1}},"spec":{"containers":[{"name":"c"}]}})",
       {"metadata.labels[a]: Invalid value: 1: must be of type string, not number"}},
      {"Deployment", "apps", R"({"spec":{"template":{}}})", {"spec.selector: Required value"}},
      {"Deployment", "apps",
       R"({"spec":{"selector":{"matchExpressions":[{"key":"a","operator":"Near"}]},"template":{}}})",
       {"spec.selector.matchExpressions[0].operator: Unsupported value: \"Near\": supported values: \"In\", "
        "\"NotIn\", \"Exists\", \"DoesNotExist\""}},
      {"Service", "", R"({"spec":{"ports":[{"port":80,"targetPort":"http"}],"type":"ClusterIP"}})", {}},
      {"Service", "", R"({"spec":{"ports":[{"port":80,"targetPort":true}]}})",
       {"spec.ports[0].targetPort: Invalid value: true: must be of type int or string, not bool"}},
      // status is written by controllers and not checked here
      {"Pod", "", R"({"spec":{"containers":[{"name":"c"}]},"status":{"phase":"Elsewhere"}})", {}},
  };
  for (const auto& c : cases) {
    const TypeDef* root = schema.RootType(c.group, "v1", c.kind);
    ASSERT_NE(root, nullptr) << c.kind;
    std::vector<std::string> got;
    for (const auto& cause : ValidateStructure(schema, *root, json::parse(c.body))) {
      got.push_back(cause.field + ": " + cause.message);
    }
    EXPECT_EQ(got, c.expected) << c.body;
  }
}

TEST(ApplyDefaultsTest, DefaultsOnlyInsidePresentObjects) {
  const Schema& schema = Schema::Builtin();
  json pod = json::parse(R"({"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","ports":[{"containerPort":80}]}]}})");
  ApplyDefaults(schema, *schema.RootType("", "v1", "Pod"), pod);
  EXPECT_EQ(pod["spec"]["restartPolicy"], "Always");
  EXPECT_EQ(pod["spec"]["dnsPolicy"], "ClusterFirst");
  EXPECT_EQ(pod["spec"]["terminationGracePeriodSeconds"], 30);
  EXPECT_EQ(pod["spec"]["schedulerName"], "default-scheduler");
  EXPECT_EQ(pod["spec"]["containers"][0]["terminationMessagePath"], "/dev/termination-log");
  EXPECT_EQ(pod["spec"]["containers"][0]["terminationMessagePolicy"], "File");
  EXPECT_EQ(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
  EXPECT_FALSE(pod.contains("status"));

  json deployment = json::parse(R"({"spec":{"strategy":{"rollingUpdate":{}}}})");
  ApplyDefaults(schema, *schema.RootType("apps", "v1", "Deployment"), deployment);
  EXPECT_EQ(deployment["spec"]["replicas"], 1);
  EXPECT_EQ(deployment["spec"]["revisionHistoryLimit"], 10);
  EXPECT_EQ(deployment["spec"]["progressDeadlineSeconds"], 600);
  EXPECT_EQ(deployment["spec"]["strategy"]["type"], "RollingUpdate");
  EXPECT_EQ(deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
}

TEST(EmbeddedSchemaTest, FilesAreCompiledIn) {
  std::vector<std::string> names;
  for (const auto& f : EmbeddedSchemaFiles()) names.emplace_back(f.name);
  EXPECT_NE(std::find(names.begin(), names.end(), "core_v1.yaml"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "apps_v1.yaml"), names.end());
}

}  // namespace
}  // namespace kelpie::api::schema
