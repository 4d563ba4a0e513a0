#include "orchestrator/api/api_error.h"

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "orchestrator/store/store.h"

namespace kelpie::api {
namespace {

std::string Qualified(const std::string& group, const std::string& resource) {
  return group.empty() ? resource : absl::StrCat(resource, ".", group);
}

}  // namespace

std::string ApiError::ToJson() const {
  nlohmann::json j = {{"kind", "Status"},
                      {"apiVersion", "v1"},
                      {"metadata", nlohmann::json::object()},
                      {"status", "Failure"},
                      {"message", message},
                      {"reason", reason},
                      {"code", code}};
  nlohmann::json details = nlohmann::json::object();
  if (!name.empty()) details["name"] = name;
  if (!group.empty()) details["group"] = group;
  if (!kind.empty()) details["kind"] = kind;
  if (!causes.empty()) {
    nlohmann::json cs = nlohmann::json::array();
    for (const auto& c : causes) {
      cs.push_back({{"reason", c.reason}, {"message", c.message}, {"field", c.field}});
    }
    details["causes"] = cs;
  }
  if (retry_after_seconds > 0) details["retryAfterSeconds"] = retry_after_seconds;
  if (!details.empty()) j["details"] = details;
  return j.dump();
}

ApiError NotFound(const std::string& group, const std::string& resource, const std::string& name) {
  return {404, "NotFound", absl::StrCat(Qualified(group, resource), " \"", name, "\" not found"),
          name, group, resource};
}

ApiError AlreadyExists(const std::string& group, const std::string& resource, const std::string& name) {
  return {409, "AlreadyExists",
          absl::StrCat(Qualified(group, resource), " \"", name, "\" already exists"), name, group,
          resource};
}

ApiError Conflict(const std::string& group, const std::string& resource, const std::string& name,
                  const std::string& why) {
  return {409, "Conflict",
          absl::StrCat("Operation cannot be fulfilled on ", Qualified(group, resource), " \"", name,
                       "\": ", why),
          name, group, resource};
}

ApiError Invalid(const std::string& group, const std::string& kind, const std::string& name,
                 std::vector<StatusCause> causes) {
  std::string list;
  for (size_t i = 0; i < causes.size(); ++i) {
    absl::StrAppend(&list, i ? ", " : "", causes[i].field, ": ", causes[i].message);
  }
  std::string qualified_kind = group.empty() ? kind : absl::StrCat(kind, ".", group);
  ApiError e{422, "Invalid",
             absl::StrCat(qualified_kind, " \"", name, "\" is invalid: ",
                          causes.size() > 1 ? "[" + list + "]" : list),
             name, group, kind};
  e.causes = std::move(causes);
  return e;
}

ApiError BadRequest(const std::string& message) { return {400, "BadRequest", message}; }
ApiError MethodNotAllowed(const std::string& message) { return {405, "MethodNotAllowed", message}; }
ApiError UnsupportedMediaType(const std::string& content_type) {
  return {415, "UnsupportedMediaType",
          absl::StrCat("the body of the request was in an unknown format - accepted media types "
                       "include: application/json, application/yaml, application/json-patch+json, "
                       "application/merge-patch+json (got \"", content_type, "\")")};
}
ApiError NotAcceptable(const std::string& message) { return {406, "NotAcceptable", message}; }
ApiError Gone(const std::string& message) { return {410, "Expired", message}; }
ApiError Unauthorized(const std::string& message) { return {401, "Unauthorized", message}; }
ApiError Forbidden(const std::string& user, const std::string& verb, const std::string& group,
                   const std::string& resource, const std::string& namespace_name,
                   const std::string& why) {
  std::string scope = namespace_name.empty()
                          ? "at the cluster scope"
                          : absl::StrCat("in the namespace \"", namespace_name, "\"");
  return {403, "Forbidden",
          absl::StrCat(Qualified(group, resource), " is forbidden: User \"", user,
                       "\" cannot ", verb, " resource \"", resource, "\" in API group \"", group,
                       "\" ", scope, why.empty() ? "" : ": " + why),
          "", group, resource};
}
ApiError TooManyRequests(const std::string& message, int retry_after_seconds) {
  ApiError e{429, "TooManyRequests", message};
  e.retry_after_seconds = retry_after_seconds;
  return e;
}
ApiError InternalError(const std::string& message) {
  return {500, "InternalError", absl::StrCat("Internal error occurred: ", message)};
}
ApiError ServiceUnavailable(const std::string& message) {
  return {503, "ServiceUnavailable", message};
}

ApiError FromStoreStatus(const absl::Status& status, const std::string& group,
                         const std::string& resource, const std::string& name) {
  if (store::IsCompacted(status)) {
    return Gone(absl::StrCat("too old resource version: ", status.message()));
  }
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return NotFound(group, resource, name);
    case absl::StatusCode::kAlreadyExists:
      return AlreadyExists(group, resource, name);
    case absl::StatusCode::kFailedPrecondition:
      return Conflict(group, resource, name,
                      "the object has been modified; please apply your changes to the latest "
                      "version and try again");
    case absl::StatusCode::kInvalidArgument:
      if (absl::StrContains(status.message(), "request is too large")) {
        return {413, "RequestEntityTooLarge", std::string(status.message())};
      }
      return BadRequest(std::string(status.message()));
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return ServiceUnavailable(absl::StrCat("storage unavailable: ", status.message()));
    default:
      return InternalError(std::string(status.message()));
  }
}

}  // namespace kelpie::api
