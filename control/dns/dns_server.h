// The cluster DNS server: UDP and TCP on one address:port. Questions in the
// cluster zone (and PTRs of cluster addresses) are answered from a
// ClusterDnsView; everything else is forwarded to upstream resolvers over
// UDP (with a timeout, next upstream on failure, TCP on truncation), and
// answered SERVFAIL when there is no upstream. Asio stays in the .cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/dns/cluster_dns_view.h"

namespace prometheus {
class Registry;
}

namespace kelpie::dns {

struct Upstream {
  std::string address;  // IPv4 or IPv6 literal
  uint16_t port = 53;
};

// nameserver lines of a resolv.conf text, in order.
std::vector<Upstream> ParseResolvConf(const std::string& text);
// The upstreams of a resolv.conf file without loopback resolvers (which
// would be this server itself or a node-local stub unreachable from pods).
absl::StatusOr<std::vector<Upstream>> UpstreamsFromResolvConf(const std::string& path);

struct DnsServerOptions {
  std::string address = "0.0.0.0";
  uint16_t port = 53;  // 0: pick a free port (same number for UDP and TCP)
  std::vector<Upstream> upstreams;  // empty: refuse to forward (SERVFAIL)
  std::chrono::milliseconds upstream_timeout{2000};
  std::chrono::seconds tcp_idle_timeout{10};
};

class DnsServer {
 public:
  // registry may be null (no metrics). The view must outlive the server.
  DnsServer(DnsServerOptions options, const ClusterDnsView& view, prometheus::Registry* registry = nullptr);
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Binds UDP and TCP and starts serving on a background thread.
  absl::Status Start();
  void Stop();
  uint16_t port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kelpie::dns
