// absl::Status for Kubernetes API errors: the HTTP code and the Status
// reason (NotFound, AlreadyExists, Conflict, Gone, ...) travel as payloads so
// callers can tell them apart without parsing messages.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace kelpie::client {

// Builds the Status for an HTTP error response (`body` is the Kubernetes
// Status object, or anything else the server sent).
absl::Status StatusFromHttp(int http_code, const std::string& body);

// The HTTP code (0 when the status did not come from a response) and the
// Kubernetes reason ("" when absent).
int HttpCode(const absl::Status& status);
std::string Reason(const absl::Status& status);

// Call these qualified (client::IsNotFound): absl has same-named helpers
// that argument-dependent lookup would also find.
bool IsNotFound(const absl::Status& status);
bool IsAlreadyExists(const absl::Status& status);
bool IsConflict(const absl::Status& status);  // 409 reason Conflict (stale resourceVersion)
bool IsGone(const absl::Status& status);      // 410: resourceVersion too old / compacted
bool IsInvalid(const absl::Status& status);   // 422
bool IsForbidden(const absl::Status& status);

}  // namespace kelpie::client
