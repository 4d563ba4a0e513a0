// The few fields of Pods and Nodes the scheduler reads, decoded once from
// their JSON documents into plain structs so that filters and scores never
// touch JSON.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json_fwd.hpp>

namespace kelpie::scheduler {

using Labels = std::map<std::string, std::string>;

// Resource amounts as the scheduler adds them up: cpu in millicores, the
// others in whole units (bytes, counts).
struct Resources {
  int64_t milli_cpu = 0;
  int64_t memory = 0;
  int64_t ephemeral_storage = 0;
  int64_t pods = 0;  // only meaningful for node allocatable
  std::map<std::string, int64_t> scalar;  // extended resources, hugepages-*

  void Add(const Resources& r);
  void Subtract(const Resources& r);
  // Element-wise max (init containers against the running ones).
  void SetMax(const Resources& r);
};

// A label selector requirement matched against a label map (metav1.LabelSelector).
struct SelectorRequirement {
  enum class Op { kIn, kNotIn, kExists, kDoesNotExist, kGt, kLt };
  std::string key;
  Op op = Op::kIn;
  std::vector<std::string> values;
};

struct LabelSelector {
  std::vector<SelectorRequirement> requirements;
  bool matches_nothing = false;  // a null selector in a term
  bool Matches(const Labels& labels) const;
};

// v1.NodeSelectorTerm: expressions on labels and (metadata.name) fields, ANDed.
struct NodeSelectorTerm {
  std::vector<SelectorRequirement> match_expressions;
  std::vector<SelectorRequirement> match_fields;
  bool Matches(const std::string& node_name, const Labels& node_labels) const;
};

// Terms are ORed; an empty list matches nothing (as Kubernetes).
struct NodeSelector {
  std::vector<NodeSelectorTerm> terms;
  bool Matches(const std::string& node_name, const Labels& node_labels) const;
};

struct PreferredSchedulingTerm {
  int32_t weight = 0;
  NodeSelectorTerm preference;
};

struct PodAffinityTerm {
  LabelSelector selector;
  // Namespaces the term selects pods in: `namespaces` plus those matched by
  // `namespace_selector`; both empty means the pod's own namespace.
  std::vector<std::string> namespaces;
  std::optional<LabelSelector> namespace_selector;
  std::string topology_key;
};

struct WeightedPodAffinityTerm {
  int32_t weight = 0;
  PodAffinityTerm term;
};

struct Toleration {
  std::string key;
  std::string op = "Equal";  // Equal or Exists
  std::string value;
  std::string effect;  // empty matches every effect
};

struct Taint {
  std::string key;
  std::string value;
  std::string effect;  // NoSchedule, PreferNoSchedule, NoExecute
};

struct HostPort {
  std::string host_ip;  // "" means 0.0.0.0
  std::string protocol = "TCP";
  int32_t port = 0;
};

struct TopologySpreadConstraint {
  int32_t max_skew = 1;
  std::string topology_key;
  bool do_not_schedule = true;  // whenUnsatisfiable
  LabelSelector selector;
  int32_t min_domains = 1;
  bool honor_node_affinity = true;   // nodeAffinityPolicy (default Honor)
  bool honor_node_taints = false;    // nodeTaintsPolicy (default Ignore)
};

struct PodInfo {
  std::string namespace_name;
  std::string name;
  std::string uid;
  std::string resource_version;
  Labels labels;
  std::string node_name;
  std::string nominated_node_name;
  std::string scheduler_name = "default-scheduler";
  std::string priority_class_name;
  std::optional<int32_t> priority;  // spec.priority as admission set it
  std::string phase;
  bool scheduling_gated = false;    // spec.schedulingGates not empty
  bool preempt_never = false;       // spec.preemptionPolicy: Never
  // The PodScheduled condition's message when it is False (what the last
  // failed attempt wrote), so an unchanged outcome writes nothing.
  std::string unschedulable_message;
  bool terminating = false;         // metadata.deletionTimestamp set
  std::string creation_timestamp;
  int64_t termination_grace_seconds = 30;

  Resources requests;           // effective requests incl. init containers and overhead
  Resources non_zero_requests;  // cpu/memory with the scoring defaults for unset requests
  bool has_any_request = false;

  Labels node_selector;
  std::optional<NodeSelector> required_node_affinity;
  std::vector<PreferredSchedulingTerm> preferred_node_affinity;
  std::vector<PodAffinityTerm> required_affinity;
  std::vector<WeightedPodAffinityTerm> preferred_affinity;
  std::vector<PodAffinityTerm> required_anti_affinity;
  std::vector<WeightedPodAffinityTerm> preferred_anti_affinity;
  std::vector<Toleration> tolerations;
  std::vector<HostPort> host_ports;
  std::vector<TopologySpreadConstraint> spread_constraints;
  std::vector<std::string> images;
  // Digest of spec and labels: tells a change that matters to scheduling
  // from a status update.
  size_t fingerprint = 0;

  std::string Key() const { return namespace_name + "/" + name; }
  int32_t Priority() const { return priority.value_or(0); }
  bool HasAffinityConstraints() const {
    return !required_affinity.empty() || !preferred_affinity.empty() || !required_anti_affinity.empty() ||
           !preferred_anti_affinity.empty();
  }
};

struct NodeInfo {
  std::string name;
  Labels labels;
  Resources allocatable;
  std::vector<Taint> taints;
  bool unschedulable = false;
  std::map<std::string, int64_t> image_sizes;  // every name of each image -> size in bytes
};

// Scoring defaults for containers that request nothing (kube-scheduler's
// DefaultMilliCPURequest / DefaultMemoryRequest).
inline constexpr int64_t kDefaultMilliCpuRequest = 100;
inline constexpr int64_t kDefaultMemoryRequest = 200 * 1024 * 1024;

absl::StatusOr<PodInfo> DecodePod(const nlohmann::json& pod);
absl::StatusOr<NodeInfo> DecodeNode(const nlohmann::json& node);

// The image name as the node reports it: "busybox" -> "docker.io/library/busybox:latest".
std::string NormalizedImageName(const std::string& image);

}  // namespace kelpie::scheduler
