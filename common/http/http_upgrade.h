// Switching protocols (WebSocket, SPDY) on both ends: a server handler hands
// its connection over after a 101, a client dials an upgrade and gets the
// raw connection. Kept apart from http_message.h so the widely included
// request/response types stay small.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/http/http_client.h"
#include "common/http/http_message.h"

namespace kelpie::http {

// A connection after "101 Switching Protocols": raw bytes both ways. One
// thread may Read while another Writes.
class UpgradedConnection {
 public:
  virtual ~UpgradedConnection() = default;
  // Blocks until bytes arrive; returns 0 once the peer closed or the
  // connection broke.
  virtual size_t Read(char* data, size_t size) = 0;
  // Blocks until all of `data` is written; false once the connection broke.
  virtual bool Write(std::string_view data) = 0;
  // Closes both directions (a pending Read returns 0). Idempotent.
  virtual void Close() = 0;
};

using UpgradeHandler = std::function<void(std::unique_ptr<UpgradedConnection>)>;

// Implemented by the HTTPS server's responders (and wrappers that forward
// to them): writes `head` (101 with its Upgrade headers, no body) and runs
// `handler` with the raw connection on a thread of its own. Server shutdown
// closes the connection and waits for the handler to return.
class UpgradableResponder {
 public:
  virtual ~UpgradableResponder() = default;
  virtual void Upgrade(HttpResponse head, UpgradeHandler handler) = 0;
};

// Upgrades through `responder` when it can, else answers 500.
void UpgradeOrFail(HttpResponder& responder, HttpResponse head, UpgradeHandler handler);

// The answer to an upgrade request: `connection` is set when the server
// switched protocols (101); otherwise `response` holds its whole answer.
struct UpgradeResult {
  HttpResponse response;
  std::unique_ptr<UpgradedConnection> connection;
};

// Sends `request` (its Upgrade/Connection headers are the caller's) on a new
// connection to `options.server` and reads the answer's head; on 101 the
// connection is handed over.
absl::StatusOr<UpgradeResult> DialUpgrade(const HttpClientOptions& options, const ClientRequest& request);

// HttpClient::Stream on a new connection that also tells `on_head` the
// status and headers before the first body piece (a proxy relays them).
absl::StatusOr<HttpResponse> StreamWithHead(const HttpClientOptions& options, const ClientRequest& request,
                                            const std::function<void(const HttpResponse&)>& on_head,
                                            const std::function<bool(std::string_view)>& on_data,
                                            StreamCanceller& canceller);

}  // namespace kelpie::http
