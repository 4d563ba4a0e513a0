// HTTPS client for Kelpie's own components (agents, tests, later informers):
// keep-alive connection reuse, whole responses or streamed chunked bodies.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
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

// Ends a Stream() from another thread: Cancel() makes the stream's call
// return promptly (with the headers read so far, or an error before them).
// One canceller serves one stream at a time; cancelling before the stream
// starts ends it as soon as it does.
class StreamCanceller {
 public:
  void Cancel();
  bool cancelled();

  // For HttpClient implementations: set while a stream runs; `cancel` posts
  // the cancellation onto the stream's I/O loop.
  void Attach(std::function<void()> cancel);
  void Detach();

 private:
  std::mutex mu_;
  bool cancelled_ = false;
  std::function<void()> cancel_;
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
  // The same, ended early by `canceller`. Implementations that cannot
  // cancel (test fakes) stream to the end.
  virtual absl::StatusOr<HttpResponse> Stream(const ClientRequest& request,
                                              const std::function<bool(std::string_view)>& on_data,
                                              StreamCanceller& canceller) {
    (void)canceller;
    return Stream(request, on_data);
  }
};

}  // namespace kelpie::http
