// What a node is, as the kubelet reports it in its Node object: capacity
// (cpu, memory, ephemeral storage, pods), addresses and system info, read
// from the machine (under a configurable root so tests can use a fake
// /proc and /etc), and the Node object built from them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace kelpie::kubelet {

struct NodeFacts {
  std::string hostname;
  int64_t cpu_millicores = 0;
  int64_t memory_bytes = 0;
  int64_t ephemeral_storage_bytes = 0;  // of the filesystem holding the node's data
  std::string internal_ip;
  std::string kernel_version;
  std::string os_image;
  std::string architecture;  // Kubernetes' spelling: amd64, arm64
  std::string machine_id;
  std::string boot_id;
  std::string container_runtime_version;  // runc://1.1.5
};

struct NodeFactsOptions {
  // Prefix for /proc, /etc and /sys reads ("" for the real machine).
  std::string root;
  // Folder whose filesystem's size is the node's ephemeral storage.
  std::string storage_path = "/";
  // Reported address; empty picks the address of the default route's
  // interface (then any non-loopback IPv4, then 127.0.0.1).
  std::string node_ip;
  // Overrides the machine's host name (lower-cased either way).
  std::string hostname;
  std::string runc_version;  // "1.1.5" when known
};

absl::StatusOr<NodeFacts> GatherNodeFacts(const NodeFactsOptions& options);

struct NodeSettings {
  std::string name;
  int64_t max_pods = 110;
  // Subtracted from capacity for allocatable (system and kubelet reserved).
  int64_t reserved_cpu_millicores = 100;
  int64_t reserved_memory_bytes = 256LL << 20;
  int64_t eviction_memory_bytes = 100LL << 20;  // memory.available<100Mi, kubelet's default
  std::map<std::string, std::string> labels;
  std::string pod_cidr;
  std::string kubelet_version;
};

// The Node object (without conditions or resourceVersion): labels,
// spec.podCIDR(s), status.capacity/allocatable/addresses/nodeInfo.
nlohmann::json NodeObject(const NodeFacts& facts, const NodeSettings& settings);

// "1500m" or "2" for cpu; "123456Ki" for memory as the kubelet reports it.
std::string CpuQuantity(int64_t millicores);
std::string KibiQuantity(int64_t bytes);

}  // namespace kelpie::kubelet
