// The fieldValidation query parameter of create, update and patch requests,
// checked against the schema (orchestrator/api/schema):
//   Strict  unknown fields fail the request: 400 BadRequest
//           `strict decoding error: unknown field "spec.foo", unknown field "x"`
//   Warn    unknown fields are dropped and reported as `Warning: 299` headers
//           (the default when the parameter is absent, as in kube-apiserver)
//   Ignore  unknown fields are dropped silently
// Kinds without a schema keep every field.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/http/http_message.h"
#include "orchestrator/api/api_error.h"

namespace kelpie::apiserver {

enum class FieldValidation { kIgnore, kWarn, kStrict };

// Parses the parameter's value ("" is the default, Warn).
std::optional<FieldValidation> ParseFieldValidation(const std::string& value);

// Applies `mode` to `object` of group/version/kind. Returns the error to
// answer with for Strict; otherwise appends warnings (Warn) and drops the
// unknown fields from `object`.
std::optional<api::ApiError> CheckUnknownFields(FieldValidation mode, const std::string& group,
                                                const std::string& version, const std::string& kind,
                                                nlohmann::json& object, std::vector<std::string>* warnings);

// Adds `Warning: 299 - "<text>"` headers to the response it passes on.
std::shared_ptr<http::HttpResponder> WithWarnings(std::shared_ptr<http::HttpResponder> inner,
                                                  std::vector<std::string> warnings);

}  // namespace kelpie::apiserver
