// HTTPS client for Kelpie's own components (agents, tests, later informers):
// keep-alive connection reuse, whole responses or streamed chunked bodies.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/http/http_message.h"
#include "common/http/tls_context.h"

namespace kelpie::http {

struct HttpClientOptions {
  std::string server;  // https://host:port
  TlsClientConfig tls;
  std::string bearer_token;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds request_timeout{std::chrono::seconds(60)};
};

struct ClientRequest {
  std::string method = "GET";
  std::string target = "/";  // path and query
  HeaderList headers;
  std::string body;
};

class HttpClient {
 public:
  static absl::StatusOr<std::unique_ptr<HttpClient>> Create(HttpClientOptions options);
  virtual ~HttpClient() = default;

  // Sends the request and reads the whole response. Transport errors
  // (connect, TLS, timeout) are Unavailable / DeadlineExceeded; any HTTP
  // status is a successful result.
  virtual absl::StatusOr<HttpResponse> Do(const ClientRequest& request) = 0;

  // Sends the request and hands each piece of the body to `on_data` as it
  // arrives; `on_data` returns false to stop. Returns the status and headers
  // (body left empty). Uses a dedicated connection.
  virtual absl::StatusOr<HttpResponse> Stream(
      const ClientRequest& request, const std::function<bool(std::string_view)>& on_data) = 0;
};

}  // namespace kelpie::http
