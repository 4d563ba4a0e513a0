// HTTP for the registry client, behind an interface so the client's auth
// and manifest logic can be tested without a network.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kelpie::image {

struct RegistryHttpRequest {
  std::string method = "GET";
  std::string url;  // http(s)://host[:port]/path?query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Basic auth sent with this request only (never to a redirect's other host).
  std::string basic_user, basic_password;
};

struct RegistryHttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // of the final response, names lower-case
  std::string body;  // whole body, unless streamed to a sink (then only for non-2xx answers)

  // First value of a header (lower-case name), or "".
  std::string Header(absl::string_view name) const;
};

class RegistryTransport {
 public:
  virtual ~RegistryTransport() = default;
  // Sends the request, following redirects. With `sink`, the body of a 2xx
  // answer is handed to it piece by piece (an error from the sink ends the
  // transfer and is returned); other answers keep their (small) body in the
  // response. Transport failures (DNS, connect, TLS, stalls) are Unavailable.
  virtual absl::StatusOr<RegistryHttpResponse> Send(
      const RegistryHttpRequest& request,
      const std::function<absl::Status(absl::string_view)>* sink = nullptr) = 0;
};

}  // namespace kelpie::image
