// NodePort and externalIP frontends from Services and EndpointSlices: the
// state the tc program (bpf/nodeport.bpf.c) reads, applied as a difference
// to the NodePortMaps. One frontend per (node address, nodePort, protocol)
// and per (externalIP, port, protocol); one backend list per service port.
// externalTrafficPolicy Local keeps only endpoints on this node and turns
// SNAT off; Cluster SNATs to the node address the client reached (for
// externalIPs: the first node address).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "control/service_proxy/service_types.h"
#include "dataplane/nodeport_program.h"

namespace kelpie::service_proxy {

struct NodePortProxyOptions {
  std::string node_name;
  std::vector<std::string> node_addresses;  // IPv4, dotted
};

class NodePortProxy {
 public:
  NodePortProxy(dataplane::NodePortMaps& maps, NodePortProxyOptions options);

  absl::Status OnServiceUpdate(const Service& service);
  absl::Status OnServiceDelete(const std::string& namespace_name, const std::string& name);
  absl::Status OnEndpointSliceUpdate(const EndpointSlice& slice);
  absl::Status OnEndpointSliceDelete(const std::string& namespace_name, const std::string& name);

  size_t frontend_count() const { return frontends_.size(); }

 private:
  using FrontendKey = std::tuple<uint32_t, uint16_t, uint8_t>;  // address, port, protocol (network order)
  struct Backend {
    uint32_t address;
    uint16_t port;
    bool operator==(const Backend&) const = default;
  };
  absl::Status Sync(const std::string& service_key);
  uint32_t IdFor(const std::string& port_key);

  dataplane::NodePortMaps& maps_;
  NodePortProxyOptions options_;
  std::map<std::string, Service> services_;
  std::map<std::string, EndpointSlice> slices_;  // by slice key
  std::map<FrontendKey, kelpie_np_frontend_value> frontends_;
  std::map<FrontendKey, std::string> frontend_owner_;  // service key
  std::map<uint32_t, std::vector<Backend>> backends_;   // by service id
  std::map<std::string, uint32_t> ids_;                 // "<ns>/<name>/<port name>/<proto>" -> id
  uint32_t next_id_ = 1;
};

}  // namespace kelpie::service_proxy
