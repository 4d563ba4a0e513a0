#include "orchestrator/client/api_errors.h"

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kelpie::client {
namespace {

constexpr char kCodeUrl[] = "kelpie.io/http-code";
constexpr char kReasonUrl[] = "kelpie.io/status-reason";

absl::StatusCode CodeFor(int http_code, const std::string& reason) {
  switch (http_code) {
    case 400: return absl::StatusCode::kInvalidArgument;
    case 401: return absl::StatusCode::kUnauthenticated;
    case 403: return absl::StatusCode::kPermissionDenied;
    case 404: return absl::StatusCode::kNotFound;
    case 409: return reason == "AlreadyExists" ? absl::StatusCode::kAlreadyExists : absl::StatusCode::kAborted;
    case 410: return absl::StatusCode::kOutOfRange;
    case 422: return absl::StatusCode::kInvalidArgument;
    case 429: return absl::StatusCode::kResourceExhausted;
    case 503: return absl::StatusCode::kUnavailable;
    case 504: return absl::StatusCode::kDeadlineExceeded;
    default: return absl::StatusCode::kUnknown;
  }
}

}  // namespace

absl::Status StatusFromHttp(int http_code, const std::string& body) {
  std::string reason, message;
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.value("kind", "") == "Status") {
    if (j.contains("reason") && j["reason"].is_string()) reason = j["reason"].get<std::string>();
    if (j.contains("message") && j["message"].is_string()) message = j["message"].get<std::string>();
  } else {
    message = body.substr(0, 512);
  }
  if (reason.empty()) {
    // Old or foreign servers: derive the reason from the code as client-go does.
    switch (http_code) {
      case 404: reason = "NotFound"; break;
      case 409: reason = "Conflict"; break;
      case 410: reason = "Gone"; break;
      case 422: reason = "Invalid"; break;
      case 403: reason = "Forbidden"; break;
      default: break;
    }
  }
  absl::Status status(CodeFor(http_code, reason),
                      absl::StrCat("HTTP ", http_code, reason.empty() ? "" : " ", reason, ": ", message));
  status.SetPayload(kCodeUrl, absl::Cord(std::to_string(http_code)));
  if (!reason.empty()) status.SetPayload(kReasonUrl, absl::Cord(reason));
  return status;
}

int HttpCode(const absl::Status& status) {
  auto p = status.GetPayload(kCodeUrl);
  int code = 0;
  if (p && absl::SimpleAtoi(std::string(*p), &code)) return code;
  return 0;
}

std::string Reason(const absl::Status& status) {
  auto p = status.GetPayload(kReasonUrl);
  return p ? std::string(*p) : std::string();
}

bool IsNotFound(const absl::Status& status) { return HttpCode(status) == 404; }
bool IsAlreadyExists(const absl::Status& status) { return Reason(status) == "AlreadyExists"; }
bool IsConflict(const absl::Status& status) { return HttpCode(status) == 409 && Reason(status) != "AlreadyExists"; }
bool IsGone(const absl::Status& status) { return HttpCode(status) == 410 || Reason(status) == "Expired"; }
bool IsInvalid(const absl::Status& status) { return HttpCode(status) == 422; }
bool IsForbidden(const absl::Status& status) { return HttpCode(status) == 403; }

}  // namespace kelpie::client
