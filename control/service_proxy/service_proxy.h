// Service routing control: turns Services and EndpointSlices into the
// socket load-balancing maps (dataplane/service_maps.h) with Kubernetes
// semantics, and writes only what changed.
//
// Feeding: an informer calls OnServiceUpdate / OnEndpointSliceUpdate /
// OnServiceDelete / OnEndpointSliceDelete for every event and
// OnInitialSyncDone() once its first full list has been delivered. Events
// before that are collected and applied together at OnInitialSyncDone();
// afterwards each call reconciles the affected service synchronously
// (thread-safe).
//
// Restart: Restore() reads what a previous run left in the pinned maps and
// keeps it serving; services re-announced by the informer adopt their old
// frontend and backend ids (no rewrite when nothing changed). Entries no
// service claims are removed only at OnInitialSyncDone(), so a restart never
// opens a window in which a live service is missing.
//
// Write order per service (readers are the BPF programs, concurrently):
// new backends, then slots [0, n) overwritten in place, then the service
// entry with the new slot count, then slots past n, then removed services,
// then unreferenced backends. A reader sees either the old or the new table
// and never an empty or dangling one.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control/service_proxy/service_types.h"
#include "dataplane/service_maps.h"

namespace prometheus {
class Registry;
class Histogram;
class Gauge;
template <typename T>
class Family;
}  // namespace prometheus

namespace kelpie::service_proxy {

struct ServiceProxyOptions {
  // This node's name (internalTrafficPolicy: Local keeps endpoints whose
  // nodeName matches).
  std::string node_name;
  // 0: random selection over the ready backends. A prime (e.g. 16381 as in
  // Cilium, or 1021): Maglev tables of that size, identical on every node.
  uint32_t maglev_table_size = 0;
  // This node's addresses (IPv4, dotted): NodePort and LoadBalancer
  // services get a socket-level frontend per address and nodePort, so pods
  // and node processes reach <node address>:<nodePort> like the service
  // (external traffic is the tc program's, see NodePortProxy).
  std::vector<std::string> node_addresses;
};

// A backend as routed: IPv4 address, port, protocol.
struct BackendAddress {
  uint32_t address_be = 0;
  uint16_t port = 0;  // host order
  uint8_t protocol = 0;
  auto operator<=>(const BackendAddress&) const = default;
  std::string ToString() const;  // "10.42.1.5:8080/tcp"
};

class ServiceProxy {
 public:
  ServiceProxy(dataplane::LbMaps& maps, prometheus::Registry& registry, ServiceProxyOptions options);
  ~ServiceProxy();

  // Reads the maps left by a previous run (call once, before events).
  absl::Status Restore();

  absl::Status OnServiceUpdate(const Service& service);
  absl::Status OnServiceDelete(const std::string& namespace_name, const std::string& name);
  absl::Status OnEndpointSliceUpdate(const EndpointSlice& slice);
  absl::Status OnEndpointSliceDelete(const std::string& namespace_name, const std::string& name);
  // The informer delivered its first full list: remove what no service
  // claims (stale entries of a previous run).
  absl::Status OnInitialSyncDone();
  // The node's addresses changed: NodePort frontends follow (a no-op when
  // the set is unchanged).
  absl::Status SetNodeAddresses(std::vector<std::string> addresses);

  // Refreshes the pressure of the maps the BPF programs fill (reverse
  // translation and affinity LRUs) by walking them: call on a slow timer.
  absl::Status RefreshLruPressure();

  // Frontends and backends currently programmed (for tests and status).
  size_t frontend_count() const;
  size_t backend_count() const;
  // The service id of a frontend, if programmed.
  std::optional<uint32_t> ServiceIdOf(const kelpie_lb_service_key& key) const;

 private:
  struct DesiredFrontend {
    kelpie_lb_service_key key{};
    uint16_t flags = 0;
    uint32_t affinity_timeout_s = 0;
    std::vector<BackendAddress> backends;  // sorted, unique
  };
  struct AppliedFrontend {
    kelpie_lb_service_value value{};
    std::vector<uint32_t> slots;   // backend id per slot
    uint32_t slot_extent = 0;      // slots written so far may reach here
    std::set<uint32_t> backend_ids;  // distinct ids referenced
    std::string owner;             // service key; empty when restored, unclaimed
  };
  struct BackendEntry {
    uint32_t id = 0;
    uint32_t refs = 0;
  };

  std::vector<DesiredFrontend> Compute(const Service& service) const;
  absl::Status Reconcile(const std::string& service_key);
  absl::Status ApplyFrontend(const std::string& owner, const DesiredFrontend& want,
                             std::vector<uint32_t>& released);
  absl::Status RemoveFrontend(const kelpie_lb_service_key& key, std::vector<uint32_t>& released);
  absl::Status DeleteUnreferencedBackends(const std::vector<uint32_t>& candidates);
  absl::StatusOr<uint32_t> BackendId(const BackendAddress& backend);
  uint32_t AllocateServiceId();
  void UpdatePressure();

  dataplane::LbMaps& maps_;
  ServiceProxyOptions options_;
  mutable std::mutex mu_;

  std::map<std::string, Service> services_;                                  // by ns/name
  std::map<std::string, std::map<std::string, EndpointSlice>> slices_;      // service key -> slice key ->
  std::map<std::string, std::string> slice_owner_;                          // slice key -> service key
  std::map<kelpie_lb_service_key, AppliedFrontend> applied_;
  std::map<std::string, std::set<kelpie_lb_service_key>> owned_;            // service key -> frontends
  std::map<BackendAddress, BackendEntry> backends_;
  std::map<uint32_t, BackendAddress> backend_by_id_;
  std::set<uint32_t> used_service_ids_;
  uint32_t next_service_id_ = 1;
  uint32_t next_backend_id_ = 1;
  size_t slot_entries_ = 0;
  size_t orphan_frontends_ = 0;  // restored slots without a service entry
  bool initial_sync_done_ = false;
  std::set<std::string> pending_;  // services heard of before the initial sync

  prometheus::Histogram* sync_duration_ = nullptr;
  prometheus::Histogram* programming_latency_ = nullptr;
  prometheus::Gauge* pressure_services_ = nullptr;
  prometheus::Gauge* pressure_backends_ = nullptr;
  prometheus::Gauge* pressure_slots_ = nullptr;
  prometheus::Gauge* pressure_revnat_ = nullptr;
  prometheus::Gauge* pressure_affinity_ = nullptr;
};

}  // namespace kelpie::service_proxy
