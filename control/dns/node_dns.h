// Cluster DNS on a node, as `kelpie server` and `kelpie agent` run it: the
// DNS server listens on the cluster DNS address (default 10.43.0.10) given
// to a local link of its own on every node, so a pod's query to that
// address is answered by its own node — no DNS pod, no hop to another
// machine (the NodeLocal DNSCache layout, without a central CoreDNS behind
// it). Informers on Services and EndpointSlices keep the zone current;
// other names go to the node's upstream resolvers.
//
// The API side: `kube-system/kube-dns` (clusterIP = the DNS address, ports
// 53/UDP and 53/TCP) reserves the address in the service range and shows
// users where DNS is; its EndpointSlice points at the same address, so the
// socket load balancer hands a query to the node-local server unchanged.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/http/http_client.h"

namespace CLI {
class App;
}
namespace prometheus {
class Registry;
}
namespace kelpie::client {
class RestClient;
}

namespace kelpie::dns {

struct NodeDnsOptions {
  bool enabled = true;
  std::string address = "10.43.0.10";  // --cluster-dns
  std::string domain = "cluster.local";  // --cluster-domain
  // The link that carries the address (a port-less bridge: always present
  // in kernels that run CNI's bridge plugin, unlike the dummy driver).
  std::string link_name = "kelpie-dns";
  std::string resolv_conf = "/etc/resolv.conf";
  uint16_t port = 53;
};

// --dns, --dns-link. The address and zone come from the kubelet's
// --cluster-dns and --cluster-domain (what pods' resolv.conf points at).
void AddNodeDnsFlags(CLI::App& app, NodeDnsOptions& options);

// Creates kube-system/kube-dns and its EndpointSlice when absent (the
// server does this once; agents only serve).
absl::Status EnsureKubeDnsService(client::RestClient& client, const std::string& address);

// Gives `address`/32 to `link_name` (creating the link, idempotent) and
// removes it again.
absl::Status EnsureDnsLink(const std::string& link_name, const std::string& address);
absl::Status RemoveDnsLink(const std::string& link_name);

class NodeDns {
 public:
  // Needs root (link, port 53). Fails when the address cannot be served.
  static absl::StatusOr<std::unique_ptr<NodeDns>> Start(const NodeDnsOptions& options,
                                                        http::HttpClientOptions client,
                                                        prometheus::Registry* registry);
  ~NodeDns();
  // Stops serving and removes the link (pods on this node lose DNS until
  // it runs again).
  void Stop();

 private:
  class Impl;
  explicit NodeDns(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kelpie::dns
