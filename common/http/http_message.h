// Transport-neutral HTTP request/response types. Handlers see these, never
// Beast, so the HTTP library stays out of widely included headers.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kelpie::http {

// Who is on the other end of a TLS connection, from its verified client
// certificate (empty when the client sent none).
struct PeerIdentity {
  bool has_client_certificate = false;
  std::string common_name;                 // user name
  std::vector<std::string> organizations;  // groups
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // GET, POST, ...
  std::string target;  // as sent: path plus query
  std::string path;    // percent-decoded path
  std::string query;   // raw query string, without '?'
  HeaderList headers;  // names lower-cased
  std::string body;
  PeerIdentity peer;
  std::string remote_address;

  // First value of a header (name lower-case), or nullptr.
  const std::string* Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  HeaderList headers;
  std::string body;

  HttpResponse& SetHeader(std::string name, std::string value);
  const std::string* Header(std::string_view name) const;
};

// Completes one request. A handler either calls Respond once, or
// StartStream, any number of WriteChunk and then EndStream (chunked
// transfer, e.g. watches). Thread-safe: may be called from any thread,
// after the handler returned.
class HttpResponder {
 public:
  virtual ~HttpResponder() = default;
  virtual void Respond(HttpResponse response) = 0;
  virtual void StartStream(int status, HeaderList headers) = 0;
  // Returns false once the client has gone; further chunks are dropped.
  virtual bool WriteChunk(std::string data) = 0;
  virtual void EndStream() = 0;
  // Runs `callback` once when the connection closes before the response
  // completed (client went away, or the server is shutting down). Runs
  // immediately if that already happened.
  virtual void OnAbort(std::function<void()> callback) = 0;
};

using HttpHandler = std::function<void(HttpRequest&&, std::shared_ptr<HttpResponder>)>;

// Splits "a=b&c=d" into decoded pairs (repeated keys keep their order).
std::vector<std::pair<std::string, std::string>> ParseQuery(std::string_view query);
std::string PercentDecode(std::string_view in, bool plus_is_space);
// Percent-encodes everything but RFC 3986's unreserved characters, for
// query values.
std::string PercentEncode(std::string_view in);

}  // namespace kelpie::http
