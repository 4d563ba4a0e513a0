// Generic object handling shared by every kind: metadata validation, the
// server-set fields, and the stored-JSON tricks that keep hot paths from
// re-parsing objects.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/status.h"

#include "orchestrator/api/api_error.h"
#include "orchestrator/api/resource_registry.h"

namespace kelpie::api {

bool IsDns1123Label(const std::string& s);
bool IsDns1123Subdomain(const std::string& s);

// Causes for everything wrong with `object`'s metadata for `type`.
std::vector<StatusCause> ValidateObjectMeta(const nlohmann::json& object, const ResourceType& type,
                                            bool creating);

// A random RFC 4122 version 4 UUID.
std::string NewUid();
// Five characters from Kubernetes' generateName alphabet.
std::string RandomNameSuffix();
// Now as RFC 3339 UTC with second precision (metav1.Time).
// Checks the JSON types of apiVersion, kind and the metadata fields every
// handler reads, as Kubernetes' decoder does before anything else: a wrong
// type is an InvalidArgument whose message reads like kube-apiserver's
// ("json: cannot unmarshal number into Go struct field ObjectMeta.metadata.name
// of type string"). Null fields are dropped, as decoding into Go would.
absl::Status NormalizeObjectShape(nlohmann::json& object);

// Now plus `offset_seconds` (deletion deadlines), in RFC 3339 UTC.
std::string NowRfc3339(int64_t offset_seconds = 0);

// Objects are stored without metadata.resourceVersion (the store's mod
// revision is the version). Serving splices it back in without parsing:
// stored JSON is written by us with "metadata" as an object member.
std::string WithResourceVersion(std::string_view stored_json, int64_t resource_version);
// The same, appended to `out` (lists build one body without a copy per item;
// the caller reserves).
void AppendWithResourceVersion(std::string_view stored_json, int64_t resource_version, std::string* out);

}  // namespace kelpie::api
