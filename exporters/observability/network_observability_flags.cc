#include "exporters/observability/network_observability_flags.h"

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "common/log.h"
#include "dataplane/kernel_filesystems.h"

namespace kelpie::observability {

void AddNetworkObservabilityFlags(CLI::App& app, NetworkObservabilityFlags& f) {
  app.add_option("--network-observability", f.enabled,
                 "Flows, TCP health and network metrics from eBPF (auto: on when running as root)")
      ->check(CLI::IsMember({"auto", "true", "false"}))
      ->capture_default_str();
  app.add_option("--observability-bind-address", f.bind_address,
                 "Address of the observability endpoint (HTTPS: /metrics, /v1/flows); it authenticates "
                 "nobody, keep it on loopback or a trusted network")
      ->capture_default_str();
  app.add_option("--observability-port", f.port, "Port of the observability endpoint (0 picks a free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--observability-pod-cgroup-parent", f.pod_cgroup_parent,
                 "cgroup folder (below the cgroup v2 root) holding one pod<uid> folder per pod")
      ->capture_default_str();
  app.add_option("--flow-ring-capacity", f.flow_ring_capacity, "Flows kept in memory for `kelpie observe`")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--flow-log-path", f.flow_log_path,
                 "Write every flow as a JSON line (the objects of `kelpie observe -o json`) to this file")
      ->capture_default_str();
  app.add_option("--flow-log-max-size", f.flow_log_max_size_mb,
                 "Rotate the flow log before it grows past this many megabytes (0: never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--flow-log-max-backups", f.flow_log_max_backups, "Rotated flow log files kept (0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--metrics-max-pod-series", f.max_pod_series,
                 "Pods with their own flow metric series; the rest are summed under pod=\"other\"")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--metrics-max-service-series", f.max_service_series,
                 "Services with their own series; the rest are summed under service=\"other\"")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

absl::StatusOr<std::unique_ptr<NetworkObservability>> StartFromFlags(const NetworkObservabilityFlags& f,
                                                                     const std::string& node_name,
                                                                     const std::string& data_dir,
                                                                     std::optional<http::HttpClientOptions> api) {
  if (f.enabled == "false") return std::unique_ptr<NetworkObservability>();
  if (f.enabled == "auto" && ::geteuid() != 0) {
    spdlog::info("network observability is off: it needs root (--network-observability=true to insist)");
    return std::unique_ptr<NetworkObservability>();
  }
  dataplane::CgroupV2Root root = dataplane::DetectCgroupV2Root();
  if (root.layout == dataplane::CgroupLayout::kNone) {
    return absl::FailedPreconditionError("network observability needs a cgroup v2 hierarchy");
  }
  NetworkObservabilityOptions o;
  o.node_name = node_name;
  o.pod_cgroup_parent = root.path + f.pod_cgroup_parent;
  o.flow_ring_capacity = f.flow_ring_capacity;
  o.max_pod_series = f.max_pod_series;
  o.max_service_series = f.max_service_series;
  o.endpoint.bind_address = f.bind_address;
  o.endpoint.port = static_cast<uint16_t>(f.port);
  o.endpoint.certificate_dir = data_dir + "/observability";
  if (!f.flow_log_path.empty()) {
    flows::FlowLogOptions log;
    log.file.path = f.flow_log_path;
    log.file.max_bytes = static_cast<uint64_t>(f.flow_log_max_size_mb) * 1024 * 1024;
    log.file.max_backups = f.flow_log_max_backups;
    o.flow_log = std::move(log);
  }
  auto started = NetworkObservability::Start(o, std::move(api));
  if (!started.ok()) return started.status();
  spdlog::info("network observability: https://{}:{} (/metrics, /v1/flows; CA {})", f.bind_address,
               (*started)->port(), (*started)->ca_file());
  return started;
}

}  // namespace kelpie::observability
