// Strategic merge patch (application/strategic-merge-patch+json), the patch
// kubectl sends for built-in kinds: maps merge, lists with a patch merge key
// merge element-wise by that key, `$patch: delete|replace`, `$retainKeys`
// and `$deleteFromPrimitiveList/<field>` directives.
//
// The merge keys are those of the built-in Kubernetes types, looked up by
// field name (containers by name, ports by containerPort or port, env by
// name, volumes by name, volumeMounts by mountPath, ...).
#pragma once

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace kelpie::api {

absl::StatusOr<nlohmann::json> StrategicMergePatch(const nlohmann::json& original,
                                                   const nlohmann::json& patch);

}  // namespace kelpie::api
