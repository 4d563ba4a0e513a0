// Pod networking through the standard CNI plugins (spec 1.0.0), executed
// directly: a bridge with host-local IPAM from the node's pod CIDR, portmap
// for hostPorts, and the loopback plugin for "lo". The runtime writes the
// network configuration list itself and keeps each ADD result, which it hands
// back as prevResult on DEL.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "orchestrator/runtime/pod_runtime.h"

namespace kelpie::runtime {

struct CniOptions {
  std::string plugin_dir = "/usr/lib/cni";
  std::string network_name = "kelpie";
  std::string bridge = "kelpie0";
  std::string pod_cidr;        // e.g. 10.42.0.0/24 (required)
  std::string state_dir;       // where the conflist and host-local leases live
  int mtu = 0;                 // 0 = the plugin's default
};

struct CniAttachment {
  std::string container_id;  // CNI_CONTAINERID (the sandbox id)
  std::string netns_path;    // CNI_NETNS ("" when the namespace is gone)
  std::string ifname = "eth0";
  std::string pod_name;
  std::string pod_namespace;
  std::vector<PortMapping> port_mappings;
};

struct CniResult {
  std::string ip;       // first IPv4 address without prefix
  std::string gateway;
  std::string raw_json;  // the final plugin result, kept for DEL
};

class CniNetwork {
 public:
  static absl::StatusOr<CniNetwork> Create(const CniOptions& options);

  const CniOptions& options() const { return options_; }
  // The configuration list this network runs (also written to disk).
  const std::string& conflist() const { return conflist_; }
  std::string conflist_path() const;
  std::string ipam_data_dir() const;

  // Brings up "lo" in the namespace (the loopback plugin, in parallel with
  // the list), and runs every plugin of the list in order; the portmap
  // plugin only when the pod maps host ports. On failure whatever was added
  // is deleted again.
  // `timings` (may be null) gets one step per plugin ("cni bridge", ...).
  absl::StatusOr<CniResult> Add(const CniAttachment& attachment, StepTimings* timings = nullptr) const;
  // Runs the plugins in reverse order with the ADD result as prevResult
  // (portmap only when the attachment maps host ports, as on ADD).
  // Idempotent: deleting twice or without a namespace succeeds.
  absl::Status Delete(const CniAttachment& attachment, const std::string& prev_result_json) const;

  // Parses a CNI result document (spec 0.4/1.0): the first IPv4 address.
  static absl::StatusOr<CniResult> ParseResult(const std::string& json);
  // The configuration list JSON for `options`.
  static std::string BuildConflist(const CniOptions& options);

 private:
  explicit CniNetwork(CniOptions options);
  // Whether `plugin` (a conflist entry) has anything to do for `attachment`.
  static bool Runs(const nlohmann::json& plugin, const CniAttachment& attachment);
  absl::StatusOr<std::string> Invoke(const std::string& command, const std::string& plugin_conf,
                                     const CniAttachment& attachment, const std::string& ifname) const;
  std::string PluginConf(size_t index, const CniAttachment& attachment,
                         const std::string& prev_result) const;

  CniOptions options_;
  std::string conflist_;
};

}  // namespace kelpie::runtime
