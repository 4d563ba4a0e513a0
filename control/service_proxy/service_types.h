// The fields of Kubernetes Services and EndpointSlices that service routing
// uses, decoded from their JSON documents.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie::service_proxy {

enum class Protocol { kTcp, kUdp, kSctp };

struct ServicePort {
  std::string name;
  Protocol protocol = Protocol::kTcp;
  uint16_t port = 0;
  uint16_t node_port = 0;  // 0 when none
};

struct Service {
  std::string namespace_name;
  std::string name;
  std::string type = "ClusterIP";  // ClusterIP, NodePort, LoadBalancer, ExternalName
  std::vector<std::string> cluster_ips;  // empty or {"None"} when headless
  std::vector<ServicePort> ports;
  bool session_affinity_client_ip = false;
  uint32_t session_affinity_timeout_s = 10800;  // Kubernetes default (3 h)
  std::vector<std::string> external_ips;
  std::string external_name;  // spec.externalName (type ExternalName: DNS CNAME target)
  bool internal_traffic_local = false;
  bool external_traffic_local = false;

  std::string Key() const { return namespace_name + "/" + name; }
  bool Headless() const;
};

struct EndpointConditions {
  // Kubernetes: nil ready means ready; nil serving means "same as ready";
  // nil terminating means not terminating.
  bool ready = true;
  bool serving = true;
  bool terminating = false;
};

struct Endpoint {
  std::vector<std::string> addresses;
  EndpointConditions conditions;
  std::string node_name;
  std::string hostname;  // endpoints[].hostname (headless DNS names); may be empty
};

struct EndpointPort {
  std::string name;
  Protocol protocol = Protocol::kTcp;
  std::optional<uint16_t> port;  // nil: "all ports" (unusable for routing)
};

struct EndpointSlice {
  std::string namespace_name;
  std::string name;
  std::string service_name;  // label kubernetes.io/service-name
  std::string address_type = "IPv4";
  std::vector<Endpoint> endpoints;
  std::vector<EndpointPort> ports;
  // Annotation endpoints.kubernetes.io/last-change-trigger-time (Unix ns),
  // when the controller set it: start of the programming latency.
  std::optional<int64_t> last_change_trigger_ns;

  std::string Key() const { return namespace_name + "/" + name; }
  std::string ServiceKey() const { return namespace_name + "/" + service_name; }
};

// Decode a Service / EndpointSlice JSON document. Errors name the field.
absl::StatusOr<Service> DecodeService(const std::string& json);
absl::StatusOr<EndpointSlice> DecodeEndpointSlice(const std::string& json);

}  // namespace kelpie::service_proxy
