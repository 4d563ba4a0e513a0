// API failures as Kubernetes Status objects: the HTTP code, the machine
// readable reason kubectl prints, and field-level causes for Invalid.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace kelpie::api {

struct StatusCause {
  std::string reason;  // FieldValueInvalid, FieldValueRequired, ...
  std::string message;
  std::string field;   // metadata.name, spec.containers[0].image, ...
};

struct ApiError {
  int code = 500;
  std::string reason;  // NotFound, AlreadyExists, Conflict, Invalid, ...
  std::string message;
  // details
  std::string name;
  std::string group;
  std::string kind;  // the resource (plural) as Kubernetes reports it
  std::vector<StatusCause> causes;
  int retry_after_seconds = 0;

  std::string ToJson() const;
};

ApiError NotFound(const std::string& group, const std::string& resource, const std::string& name);
ApiError AlreadyExists(const std::string& group, const std::string& resource, const std::string& name);
ApiError Conflict(const std::string& group, const std::string& resource, const std::string& name,
                  const std::string& why);
ApiError Invalid(const std::string& group, const std::string& kind, const std::string& name,
                 std::vector<StatusCause> causes);
ApiError BadRequest(const std::string& message);
ApiError MethodNotAllowed(const std::string& message);
ApiError UnsupportedMediaType(const std::string& content_type);
ApiError NotAcceptable(const std::string& message);
ApiError Gone(const std::string& message);
ApiError Unauthorized(const std::string& message);
ApiError Forbidden(const std::string& user, const std::string& verb, const std::string& group,
                   const std::string& resource, const std::string& namespace_name,
                   const std::string& why);
ApiError TooManyRequests(const std::string& message, int retry_after_seconds);
ApiError InternalError(const std::string& message);
ApiError ServiceUnavailable(const std::string& message);

// Maps a store failure (absl::Status) to the API error users should see.
ApiError FromStoreStatus(const absl::Status& status, const std::string& group,
                         const std::string& resource, const std::string& name);

}  // namespace kelpie::api
