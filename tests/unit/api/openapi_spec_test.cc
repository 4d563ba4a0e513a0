// Generation of the OpenAPI documents from the schema model.
#include "orchestrator/apiserver/openapi_spec.h"

#include <gtest/gtest.h>

#include "orchestrator/apiserver/openapi_handler.h"

namespace kelpie::apiserver {
namespace {

using nlohmann::json;

TEST(OpenApiSpecTest, DefinitionNamesAreKubernetes) {
  EXPECT_EQ(OpenApiDefinitionName("", "v1", "Pod"), "io.k8s.api.core.v1.Pod");
  EXPECT_EQ(OpenApiDefinitionName("rbac.authorization.k8s.io", "v1", "Role"), "io.k8s.api.rbac.v1.Role");
  EXPECT_EQ(OpenApiDefinitionName("meta", "v1", "ObjectMeta"), "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
}

TEST(OpenApiSpecTest, V3CoreDocument) {
  json doc = BuildOpenApiV3(api::schema::Schema::Builtin(), api::ResourceRegistry::Builtin(), "", "v1");
  EXPECT_EQ(doc["openapi"], "3.0.0");
  const json& schemas = doc["components"]["schemas"];
  const json& pod = schemas["io.k8s.api.core.v1.Pod"];
  EXPECT_EQ(pod["x-kubernetes-group-version-kind"][0], (json{{"group", ""}, {"kind", "Pod"}, {"version", "v1"}}));
  const json& containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
  EXPECT_EQ(containers["type"], "array");
  EXPECT_EQ(containers["x-kubernetes-patch-merge-key"], "name");
  EXPECT_EQ(containers["x-kubernetes-patch-strategy"], "merge");
  EXPECT_EQ(containers["x-kubernetes-list-type"], "map");
  EXPECT_EQ(containers["items"]["allOf"][0]["$ref"], "#/components/schemas/io.k8s.api.core.v1.Container");
  EXPECT_TRUE(schemas.contains("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
  const json& patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
  EXPECT_EQ(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
  bool field_validation = false;
  for (const auto& p : patch["parameters"]) field_validation |= p["name"] == "fieldValidation" && p["in"] == "query";
  EXPECT_TRUE(field_validation);
  EXPECT_TRUE(doc["paths"].contains("/api/v1/nodes/{name}/status"));
  EXPECT_FALSE(doc["paths"].contains("/apis/apps/v1/namespaces/{namespace}/deployments"));
}

TEST(OpenApiSpecTest, V2HasEveryGroupVersion) {
  json doc = BuildOpenApiV2(api::schema::Schema::Builtin(), api::ResourceRegistry::Builtin());
  EXPECT_EQ(doc["swagger"], "2.0");
  EXPECT_TRUE(doc["definitions"].contains("io.k8s.api.apps.v1.Deployment"));
  EXPECT_TRUE(doc["definitions"].contains("io.k8s.api.autoscaling.v1.Scale"));
  EXPECT_EQ(doc["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["template"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodTemplateSpec");
  EXPECT_TRUE(doc["paths"].contains("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"));
}

TEST(OpenApiSpecTest, HandlerHashesAndRedirects) {
  const OpenApiHandler& h = OpenApiHandler::Builtin();
  const auto* core = h.V3("api/v1");
  ASSERT_NE(core, nullptr);
  EXPECT_EQ(core->etag.size(), 128u);
  http::HttpRequest req;
  req.method = "GET";
  req.path = "/openapi/v3/api/v1";
  req.query = "hash=" + core->etag;
  auto r = h.Serve(req);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(*r.Header("Cache-Control"), "public, immutable");
  req.query = "hash=stale";
  r = h.Serve(req);
  EXPECT_EQ(r.status, 301);
  EXPECT_EQ(*r.Header("Location"), "/openapi/v3/api/v1?hash=" + core->etag);
  req.path = "/openapi/v2";
  req.query = "";
  req.headers = {{"accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}};
  EXPECT_EQ(h.Serve(req).status, 406);
}

}  // namespace
}  // namespace kelpie::apiserver
