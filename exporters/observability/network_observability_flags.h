// Command-line flags of network observability for `kelpie agent` and
// `kelpie server`, and starting it from them: on by default when running as
// root, off (with one log line) otherwise or with
// --network-observability=false.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/http/http_client.h"
#include "exporters/observability/network_observability.h"

namespace CLI {
class App;
}

namespace kelpie::observability {

struct NetworkObservabilityFlags {
  std::string enabled = "auto";  // auto (when root), true, false
  std::string bind_address = "127.0.0.1";
  int port = 9965;
  std::string pod_cgroup_parent = "/kelpie.slice";  // relative to the cgroup v2 root
  size_t flow_ring_capacity = 10000;
  size_t max_pod_series = 500;
  size_t max_service_series = 1000;
  std::string flow_log_path;  // empty: no flow log
  int flow_log_max_size_mb = 100;
  int flow_log_max_backups = 5;
};

void AddNetworkObservabilityFlags(CLI::App& app, NetworkObservabilityFlags& flags);

// nullptr (and OK) when disabled; an error when enabled but it cannot start.
absl::StatusOr<std::unique_ptr<NetworkObservability>> StartFromFlags(const NetworkObservabilityFlags& flags,
                                                                     const std::string& node_name,
                                                                     const std::string& data_dir,
                                                                     std::optional<http::HttpClientOptions> api);

}  // namespace kelpie::observability
