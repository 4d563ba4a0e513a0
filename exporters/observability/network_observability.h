// Network observability on one node, assembled: the flow and TCP health
// eBPF programs (flows on the pods' parent cgroup, which covers every pod
// below it), pod identity from Pod and Service informers plus a scan of the
// pods' cgroup folders, the flow pipeline and observer ring, the scrape-time
// metrics collector, and the HTTPS endpoint (/metrics, /v1/flows). Needs
// root (CAP_BPF, CAP_NET_ADMIN). `kelpie agent` and `kelpie server` start
// it; tests start it on their own cgroups.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/http/http_client.h"
#include "control/identity/identity_cache.h"
#include "dataplane/flow_program.h"
#include "exporters/flows/flow_log.h"
#include "exporters/flows/flow_observer.h"
#include "exporters/observability/observability_endpoint.h"

namespace kelpie::observability {

struct NetworkObservabilityOptions {
  std::string node_name;
  // Absolute cgroup v2 folder holding one "pod<uid>" folder per pod.
  std::string pod_cgroup_parent;
  size_t flow_ring_capacity = 10000;
  size_t max_pod_series = 500;
  size_t max_service_series = 1000;
  std::chrono::milliseconds cgroup_scan_interval{2000};
  dataplane::FlowProgramOptions flow_program;
  ObservabilityEndpointOptions endpoint;
  // Counts run time of the eBPF programs (BPF_ENABLE_STATS) while running.
  bool program_statistics = true;
  // Every flow as a JSON line in a rotated file (absent: no flow log).
  std::optional<flows::FlowLogOptions> flow_log;
};

class NetworkObservability {
 public:
  // `api`: the API server for Pod and Service informers; nullopt runs
  // without them (identities set by hand, as tests do).
  static absl::StatusOr<std::unique_ptr<NetworkObservability>> Start(
      const NetworkObservabilityOptions& options, std::optional<http::HttpClientOptions> api,
      std::vector<std::shared_ptr<prometheus::Collectable>> extra_metrics = {});
  ~NetworkObservability();

  identity::IdentityCache& identities();
  flows::FlowObserver& observer();
  uint16_t port() const;
  const std::string& ca_file() const;
  // Binds the cgroup folders of pods ("pod<uid>" and the folders below) to
  // their uids now (it also runs every cgroup_scan_interval).
  void ScanPodCgroups();
  void Stop();

 private:
  struct Impl;
  explicit NetworkObservability(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kelpie::observability
