// NodePort and externalIP frontends from Services and EndpointSlices: the
// state the tc program (bpf/nodeport.bpf.c) reads, applied as a difference
// to the NodePortMaps. One frontend per (node address, nodePort, protocol)
// and per (externalIP, port, protocol); one backend list per service port.
// externalTrafficPolicy Local keeps only endpoints on this node and turns
// SNAT off; Cluster SNATs to the node address the client reached (for
// externalIPs: the first node address).
//
// Restart: Restore() reads what a previous run left in the pinned maps and
// switches the proxy to deferred mode: events are only recorded until
// OnInitialSyncDone(), which reconciles every recorded service (a port whose
// frontend was restored adopts the restored service id, so its backend list
// is rewritten in place, never renumbered) and only then removes the
// frontends and backend lists no service claims. Without Restore() every
// event is applied at once. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
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

  // Reads the maps a previous run left (call once, before events).
  absl::Status Restore();

  absl::Status OnServiceUpdate(const Service& service);
  absl::Status OnServiceDelete(const std::string& namespace_name, const std::string& name);
  absl::Status OnEndpointSliceUpdate(const EndpointSlice& slice);
  absl::Status OnEndpointSliceDelete(const std::string& namespace_name, const std::string& name);
  // The informers delivered their first full lists: apply what was recorded
  // and remove what no service claims.
  absl::Status OnInitialSyncDone();

  // The node's addresses changed (an interface got or lost one): every
  // service's frontends follow. A no-op when the set is unchanged.
  absl::Status SetNodeAddresses(std::vector<std::string> addresses);
  std::vector<std::string> node_addresses() const;

  size_t frontend_count() const;
  size_t backend_count() const;  // entries in the backend lists

 private:
  using FrontendKey = std::tuple<uint32_t, uint16_t, uint8_t>;  // address, port, protocol (network order)
  struct Backend {
    uint32_t address;
    uint16_t port;
    bool operator==(const Backend&) const = default;
  };
  absl::Status Sync(const std::string& service_key);
  absl::Status SyncAll();
  uint32_t IdFor(const std::string& port_key, const std::vector<FrontendKey>& frontends);

  dataplane::NodePortMaps& maps_;
  NodePortProxyOptions options_;
  mutable std::mutex mu_;
  bool deferred_ = false;  // restored, waiting for OnInitialSyncDone()
  std::map<std::string, Service> services_;
  std::map<std::string, EndpointSlice> slices_;  // by slice key
  std::map<FrontendKey, kelpie_np_frontend_value> frontends_;
  std::map<FrontendKey, std::string> frontend_owner_;  // service key; absent: restored, unclaimed
  std::map<uint32_t, std::vector<Backend>> backends_;   // by service id
  std::map<std::string, uint32_t> ids_;                 // "<ns>/<name>/<port name>/<proto>" -> id
  std::set<uint32_t> claimed_ids_;                      // the values of ids_
  uint32_t next_id_ = 1;
};

}  // namespace kelpie::service_proxy
