// The kubelet's long-running streams once the connection switched
// protocols: exec over the WebSocket channel protocols and port-forward
// over SPDY or WebSocket. Internal to KubeletServer.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/http/http_upgrade.h"
#include "orchestrator/runtime/pod_runtime.h"

namespace kelpie::kubelet {

struct ExecStreams {
  bool stdin = false;
  bool stdout = true;
  bool stderr = true;
};

// `protocol` is v5.channel.k8s.io or v4.channel.k8s.io. Copies stdin from
// channel 0 (v5: closed by the 255 signal), stdout to 1, stderr to 2, and
// ends with the v4 status on channel 3 (exit code in its causes).
void RunExecSession(http::UpgradedConnection& conn, const std::string& protocol, runtime::ExecSession& session,
                    const ExecStreams& streams, const std::vector<std::string>& command);

// The v4 status document for an exit code (Success for 0).
std::string ExecStatusJson(int exit_code, const std::vector<std::string>& command);

// A socket connected to 127.0.0.1:`port` inside the network namespace at
// `netns_path`.
absl::StatusOr<int> ConnectInNetns(const std::string& netns_path, int port);

// SPDY/3.1 port-forward (portforward.k8s.io); `tunneled` carries the SPDY
// bytes in WebSocket binary messages.
void RunSpdyPortForward(http::UpgradedConnection& conn, bool tunneled, const std::string& netns_path,
                        const std::atomic<bool>& stopping);

// The WebSocket port-forward protocol: per port (in `ports` order) a data
// channel 2i and an error channel 2i+1, each opened by the port as two
// little-endian bytes.
void RunWebSocketPortForward(http::UpgradedConnection& conn, const std::string& netns_path,
                             const std::vector<int>& ports);

}  // namespace kelpie::kubelet
