// Pod identity for network observability: who an IP address or a cgroup id
// is (pod, namespace, labels, owning workload, node), which Service a
// cluster address belongs to, and "world" for everything outside the
// cluster. Fed from Pod and Service objects (see IdentityInformers); read by
// the flow pipeline for every event, so lookups take a shared lock only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace kelpie::identity {

enum class EndpointKind { kPod, kService, kHost, kWorld };
const char* EndpointKindName(EndpointKind kind);

// One end of a flow, as users want to read it.
struct Endpoint {
  EndpointKind kind = EndpointKind::kWorld;
  std::string namespace_name;
  std::string pod_name;
  std::string service_name;  // kind kService
  std::map<std::string, std::string> labels;
  std::string workload_kind;  // "Deployment", "StatefulSet", ... ("" when none)
  std::string workload_name;
  std::string node_name;
};

// The fields of a Pod the cache needs (decoded from its JSON).
struct PodRecord {
  std::string uid;
  std::string namespace_name;
  std::string name;
  std::map<std::string, std::string> labels;
  std::string workload_kind;
  std::string workload_name;
  std::string node_name;
  std::vector<std::string> ips;  // status.podIPs (or podIP)
  bool host_network = false;
};

struct ServiceRecord {
  std::string namespace_name;
  std::string name;
  std::vector<std::string> cluster_ips;
  std::map<std::string, std::string> selector;  // spec.selector (empty: none)
};

// Decodes a Pod; the owning workload of a ReplicaSet named like
// "<deployment>-<hash>" with pod-template-hash label is the Deployment.
absl::StatusOr<PodRecord> PodRecordFromJson(const nlohmann::json& pod);
absl::StatusOr<ServiceRecord> ServiceRecordFromJson(const nlohmann::json& service);

// Looks identities up (the interface the flow pipeline depends on).
class IdentityLookup {
 public:
  virtual ~IdentityLookup() = default;
  // The pod holding `ipv4` (network byte order), a Service's cluster
  // address, this node's own address, or world.
  virtual Endpoint ByIp(uint32_t ipv4) const = 0;
  // The pod whose cgroup has this id; nullopt when unknown.
  virtual std::optional<Endpoint> ByCgroup(uint64_t cgroup_id) const = 0;
  // "namespace/name" of the Service with this cluster address, if any.
  virtual std::optional<std::string> ServiceByIp(uint32_t ipv4) const = 0;
  // "namespace/name" of a Service in the pod's namespace whose selector
  // matches the pod's labels (the service the pod backs), if any.
  virtual std::optional<std::string> ServiceSelecting(const Endpoint& pod) const = 0;
};

class IdentityCache final : public IdentityLookup {
 public:
  void UpsertPod(const PodRecord& pod);
  void DeletePod(const std::string& namespace_name, const std::string& name);
  void UpsertService(const ServiceRecord& service);
  void DeleteService(const std::string& namespace_name, const std::string& name);
  // A cgroup of a pod (its per-pod cgroup v2 folder or a container folder
  // below it) by pod uid; bindings survive pod updates and go with the pod.
  void SetPodCgroup(const std::string& pod_uid, uint64_t cgroup_id);
  bool HasCgroup(uint64_t cgroup_id) const;
  // Addresses of this node (host-network traffic is "host", not world).
  void SetHostAddresses(const std::vector<std::string>& ips, const std::string& node_name);

  Endpoint ByIp(uint32_t ipv4) const override;
  std::optional<Endpoint> ByCgroup(uint64_t cgroup_id) const override;
  std::optional<std::string> ServiceByIp(uint32_t ipv4) const override;
  std::optional<std::string> ServiceSelecting(const Endpoint& pod) const override;
  size_t pod_count() const;

 private:
  static Endpoint PodEndpoint(const PodRecord& pod);
  void RemovePodLocked(const std::string& key);

  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, PodRecord> pods_;         // "ns/name"
  std::unordered_map<uint32_t, std::string> pod_by_ip_;     // -> "ns/name"
  std::unordered_map<std::string, std::string> pod_by_uid_; // -> "ns/name"
  std::unordered_map<std::string, std::vector<uint64_t>> cgroups_by_uid_;
  std::unordered_map<uint64_t, std::string> uid_by_cgroup_;
  std::unordered_map<std::string, std::vector<uint32_t>> service_ips_;  // "ns/name"
  std::unordered_map<uint32_t, std::string> service_by_ip_;
  std::map<std::string, std::map<std::string, std::string>> service_selectors_;  // "ns/name", ordered
  std::unordered_map<uint32_t, std::string> host_ips_;  // -> node name
};

// Parses dotted IPv4 into network byte order; nullopt when invalid.
std::optional<uint32_t> ParseIpv4(const std::string& ip);
std::string FormatIpv4(uint32_t ipv4);

}  // namespace kelpie::identity
