// The node's service routing, as `kelpie server` (its local node) and
// `kelpie agent` run it: loads the socket load balancer onto a cgroup
// (the host's cgroup v2 root by default, so node processes and pods alike
// reach Services), routes the service CIDR locally, and feeds the
// ServiceProxy from informers on Services and EndpointSlices. With
// NodePort interfaces configured it also attaches the NodePort tc program
// (bpf/nodeport.bpf.c) to them and feeds a NodePortProxy from the same
// informers, and a maintenance timer sweeps the NodePort conntrack map,
// follows the interfaces' addresses and refreshes the metrics.
#pragma once

#include <memory>
#include <string>
#include <vector>

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

  // --- NodePort and externalIP traffic (tc) ---
  // External interfaces: the program attaches to them and NodePorts listen
  // on their IPv4 addresses. Empty: no NodePort program at all. The name
  // "default-route" stands for the interface of the IPv4 default route.
  std::vector<std::string> nodeport_interfaces;
  // Interfaces facing local backends (the pod bridge), where replies of
  // local backends arrive: attached when present, and again whenever they
  // appear later; their addresses serve no NodePorts.
  std::vector<std::string> nodeport_backend_interfaces = {"kelpie0"};
  uint32_t nodeport_conntrack_entries = 262144;
  // Seconds between conntrack sweeps, address checks and metric refreshes.
  uint32_t maintenance_interval_s = 10;
};

// --service-routing, --service-routing-cgroup, --bpffs, --maglev-table-size,
// --nodeport-interfaces, --nodeport-backend-interfaces,
// --nodeport-conntrack-entries, --service-routing-maintenance-interval.
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
  // NodePort/externalIP frontends (0 without NodePort interfaces).
  size_t nodeport_frontend_count() const;

 private:
  class Impl;
  explicit ServiceRouting(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kelpie::service_proxy
