// Decoding of the Kubernetes protobuf encoding ("k8s\0" + runtime.Unknown)
// for the authentication and authorization request kinds only: kubectl's
// typed clients send `kubectl create token` and `kubectl auth can-i` as
// application/vnd.kubernetes.protobuf. The decoded object is the JSON the
// same request would have carried, so one code path serves both. Other
// kinds are not decoded here (the resource API answers protobuf with 415).
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace kelpie::apiserver {

inline constexpr char kProtobufContentType[] = "application/vnd.kubernetes.protobuf";

// `kind` is what the endpoint expects (TokenRequest, TokenReview,
// SelfSubjectReview, SelfSubjectAccessReview, SubjectAccessReview,
// LocalSubjectAccessReview, SelfSubjectRulesReview); the envelope's kind
// must match it.
absl::StatusOr<nlohmann::json> DecodeAuthProtobuf(const std::string& body, const std::string& kind);

}  // namespace kelpie::apiserver
