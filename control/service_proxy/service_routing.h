// The node's service routing, as `kelpie server` (its local node) and
// `kelpie agent` run it: loads the socket load balancer onto a cgroup
// (the host's cgroup v2 root by default, so node processes and pods alike
// reach Services), routes the service CIDR locally, and feeds the
// ServiceProxy from informers on Services and EndpointSlices.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/http/http_client.h"

namespace CLI {
class App;
}
namespace prometheus {
class Registry;
}

namespace kelpie::service_proxy {

struct ServiceRoutingOptions {
  bool enabled = true;
  std::string node_name;
  std::string service_cidr = "10.43.0.0/16";
  std::string bpffs = "/sys/fs/bpf";
  // Where the programs attach; empty: the cgroup v2 root.
  std::string cgroup_path;
  // Pins go under <bpffs>/kelpie/<pin_name> (default: the node name).
  std::string pin_name;
  uint32_t maglev_table_size = 0;
  bool route_service_cidr = true;
};

// --service-routing, --service-routing-cgroup, --bpffs, --maglev-table-size.
void AddServiceRoutingFlags(CLI::App& app, ServiceRoutingOptions& options);

class ServiceRouting {
 public:
  // Needs root (bpf, cgroup attach, route). `client` reads Services and
  // EndpointSlices for this node.
  static absl::StatusOr<std::unique_ptr<ServiceRouting>> Start(const ServiceRoutingOptions& options,
                                                               http::HttpClientOptions client,
                                                               prometheus::Registry& registry);
  ~ServiceRouting();
  // Stops following the API; the programs and pinned maps stay and keep
  // routing (a restarted agent picks them up).
  void Stop();

  size_t frontend_count() const;

 private:
  class Impl;
  explicit ServiceRouting(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kelpie::service_proxy
