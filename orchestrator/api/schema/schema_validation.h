// Schema-driven checks of a decoded JSON object: unknown fields (for the
// fieldValidation query parameter), structural validation (types, required
// fields, enums) with Kubernetes' field paths and messages, and the static
// defaults the schema declares.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "orchestrator/api/api_error.h"
#include "orchestrator/api/schema/schema.h"

namespace kelpie::api::schema {

// Paths of fields the schema does not know, in Kubernetes' form
// ("spec.foo", "spec.containers[0].bar", "metadata.labels" is never unknown).
// With drop=true they are also removed from `object`.
std::vector<std::string> FindUnknownFields(const Schema& schema, const TypeDef& root, nlohmann::json& object,
                                           bool drop);

// Type mismatches, missing required fields and unsupported enum values,
// as the causes of a 422 Invalid:
//   {FieldValueRequired, "Required value", "spec.containers[0].name"}
//   {FieldValueNotSupported, "Unsupported value: \"Sometimes\": supported values: \"Always\", ...", ...}
//   {FieldValueTypeInvalid, "Invalid value: \"x\": must be an integer", ...}
std::vector<StatusCause> ValidateStructure(const Schema& schema, const TypeDef& root, const nlohmann::json& object);

// Sets the schema's default values on absent fields of objects that are
// present (a pod spec's restartPolicy is defaulted only when the spec exists,
// as Kubernetes' defaulting functions do).
void ApplyDefaults(const Schema& schema, const TypeDef& root, nlohmann::json& object);

}  // namespace kelpie::api::schema
