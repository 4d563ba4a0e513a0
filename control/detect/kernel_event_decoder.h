// Turns the sensor's fixed-size kernel records (bpf/include/kelpie/
// detect_abi.h) into the typed Event the rule engine evaluates, attributed
// to pod, container and process with its ancestors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "control/detect/container_resolver.h"
#include "control/detect/event.h"
#include "kelpie/detect_abi.h"

namespace kelpie::detect {

struct DecoderOptions {
  // Ancestors reported per event (at most kMaxAncestors).
  size_t ancestor_depth = 4;
  std::string node_name;
};

// What the decoder knows about a live process, from exec/fork/exit records.
struct ProcessRecord {
  uint32_t ppid = 0;
  std::string exe;
  std::string name;
};

class KernelEventDecoder {
 public:
  KernelEventDecoder(ContainerResolver& resolver, const PodMetadataProvider* pods, DecoderOptions options);

  // The rule event for `record`, valid until the next call; nullptr for
  // records that only update the process table (fork, exit).
  const Event* Decode(const kelpie_detect_event& record);

  // Pids of the ancestors of the last decoded event (parallel to
  // proc.ancestors).
  const std::vector<int64_t>& ancestor_pids() const { return ancestor_pids_; }
  const std::string& node_name() const { return options_.node_name; }
  size_t process_count() const { return processes_.size(); }

 private:
  struct Attribution {
    std::string id = "host";
    std::string name, image_repository, image_tag, k8s_namespace, pod_name, pod_uid;
    std::vector<std::string> label_storage;  // key, value, key, value...
    std::vector<PodLabel> labels;
  };
  const Attribution& Attribute(uint64_t cgroup_id);
  void FillAncestors(uint32_t ppid);

  ContainerResolver& resolver_;
  const PodMetadataProvider* pods_;
  DecoderOptions options_;
  std::unordered_map<uint32_t, ProcessRecord> processes_;
  std::unordered_map<uint64_t, std::unique_ptr<Attribution>> attributions_;

  Event event_;
  std::string path_, args_, cmdline_, name_, exe_, source_, target_, fstype_, sockname_, dip_, comm_;
  std::vector<int64_t> ancestor_pids_;
};

// evt.type of a kernel record kind, false for kinds with no rule event.
bool KindToEventType(uint32_t kind, EventType* type);

}  // namespace kelpie::detect
