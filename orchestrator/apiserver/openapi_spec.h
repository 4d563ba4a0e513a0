// OpenAPI documents generated from the schema model and the resource
// registry, in kube-apiserver's shape: /openapi/v2 (Swagger 2.0, one
// document) and /openapi/v3 (one OpenAPI 3.0 document per group/version).
// Definitions carry Kubernetes' names (io.k8s.api.core.v1.Pod,
// io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta), kinds carry
// x-kubernetes-group-version-kind, lists their patch and list metadata, and
// every write operation the fieldValidation query parameter — kubectl reads
// that parameter to decide that the server validates (`kubectl apply`'s
// default --validate=strict), and `kubectl explain` reads the schemas.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "orchestrator/api/resource_registry.h"
#include "orchestrator/api/schema/schema.h"

namespace kelpie::apiserver {

// Kubernetes' definition name of a schema type: "core/v1.Pod" is
// io.k8s.api.core.v1.Pod, "rbac.authorization.k8s.io/v1.Role" is
// io.k8s.api.rbac.v1.Role, "meta/v1.ObjectMeta" is
// io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta.
std::string OpenApiDefinitionName(std::string_view group, std::string_view version, std::string_view name);

// The group/versions that get a v3 document, as its discovery key:
// "api/v1", "apis/apps/v1", ...
struct OpenApiGroupVersion {
  std::string group;
  std::string version;
  std::string key;
};
std::vector<OpenApiGroupVersion> OpenApiGroupVersions(const api::ResourceRegistry& registry);

// The OpenAPI 3.0 document of one group/version: the paths of its resources
// and the schemas they reach.
nlohmann::json BuildOpenApiV3(const api::schema::Schema& schema, const api::ResourceRegistry& registry,
                              std::string_view group, std::string_view version);

// The Swagger 2.0 document of every served group/version.
nlohmann::json BuildOpenApiV2(const api::schema::Schema& schema, const api::ResourceRegistry& registry);

}  // namespace kelpie::apiserver
