#include "orchestrator/runtime/image/curl_registry_transport.h"

#include <curl/curl.h>

#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace kelpie::image {
namespace {

// Non-2xx bodies are error documents; more than this is not worth keeping.
constexpr size_t kMaxErrorBody = 64 * 1024;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct TransferState {
  CURL* curl = nullptr;
  RegistryHttpResponse* response = nullptr;
  const std::function<absl::Status(absl::string_view)>* sink = nullptr;
  absl::Status sink_status;
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* state = static_cast<TransferState*>(user);
  absl::string_view line(data, size * count);
  // A new status line starts the headers of the next response (redirects,
  // 100 Continue): only the final response's headers are kept.
  if (absl::StartsWith(line, "HTTP/")) {
    state->response->headers.clear();
    return size * count;
  }
  auto colon = line.find(':');
  if (colon != absl::string_view::npos) {
    std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, colon)));
    std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    state->response->headers.emplace_back(std::move(name), std::move(value));
  }
  return size * count;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* state = static_cast<TransferState*>(user);
  size_t n = size * count;
  long code = 0;
  curl_easy_getinfo(state->curl, CURLINFO_RESPONSE_CODE, &code);
  if (state->sink != nullptr && code >= 200 && code < 300) {
    state->sink_status = (*state->sink)(absl::string_view(data, n));
    return state->sink_status.ok() ? n : 0;  // 0 aborts the transfer
  }
  if (state->sink != nullptr && state->response->body.size() + n > kMaxErrorBody) return n;
  state->response->body.append(data, n);
  return n;
}

}  // namespace

std::string RegistryHttpResponse::Header(absl::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

CurlRegistryTransport::CurlRegistryTransport(CurlTransportOptions options) : options_(std::move(options)) {
  GlobalInitOnce();
}

CurlRegistryTransport::~CurlRegistryTransport() = default;

absl::StatusOr<RegistryHttpResponse> CurlRegistryTransport::Send(
    const RegistryHttpRequest& request, const std::function<absl::Status(absl::string_view)>* sink) {
  const bool is_https = absl::StartsWith(request.url, "https://");
  if (!is_https && !(options_.allow_plain_http && absl::StartsWith(request.url, "http://"))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing ", request.url, ": only https:// is allowed for this registry (list it as an insecure "
        "registry to use plain HTTP)"));
  }
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl) return absl::InternalError("curl_easy_init failed");
  CURL* c = curl.get();
  RegistryHttpResponse response;
  TransferState state{c, &response, sink, absl::OkStatus()};
  const char* protocols = options_.allow_plain_http ? "http,https" : "https";
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols);
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, static_cast<long>(options_.connect_timeout.count()));
  // A transfer slower than 1 byte/s for stall_timeout is dead.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.stall_timeout.count()));
  curl_easy_setopt(c, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &state);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &state);
  if (!request.basic_user.empty() || !request.basic_password.empty()) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, request.basic_user.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, request.basic_password.c_str());
  }
  if (request.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (request.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  }
  struct curl_slist* headers = nullptr;
  for (const auto& [k, v] : request.headers) {
    headers = curl_slist_append(headers, absl::StrCat(k, ": ", v).c_str());
  }
  // curl would otherwise wait a second for "100 Continue" before large bodies.
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (!state.sink_status.ok()) return state.sink_status;
  if (rc != CURLE_OK) {
    absl::StatusCode code = rc == CURLE_OPERATION_TIMEDOUT ? absl::StatusCode::kDeadlineExceeded
                            : rc == CURLE_UNSUPPORTED_PROTOCOL ? absl::StatusCode::kFailedPrecondition
                                                               : absl::StatusCode::kUnavailable;
    return absl::Status(code, absl::StrCat(request.method, " ", request.url, ": ", curl_easy_strerror(rc)));
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  return response;
}

}  // namespace kelpie::image
