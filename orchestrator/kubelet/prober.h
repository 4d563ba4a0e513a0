// Container probes and lifecycle hooks: exec (in the container through the
// runtime), httpGet and tcpSocket (from the node to the pod IP, which lives
// in the pod's network namespace behind the node's bridge).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "orchestrator/runtime/pod_runtime.h"

namespace kelpie::kubelet {

// One probe or handler as the pod spec describes it, with Kubernetes' defaults.
struct ProbeSpec {
  enum class Kind { kNone, kExec, kHttpGet, kTcpSocket };
  Kind kind = Kind::kNone;
  std::vector<std::string> command;
  std::string host;  // "" = the pod IP
  int port = 0;
  std::string path = "/";
  std::string scheme = "HTTP";
  std::vector<std::pair<std::string, std::string>> headers;
  int initial_delay_seconds = 0;
  int period_seconds = 10;
  int timeout_seconds = 1;
  int success_threshold = 1;
  int failure_threshold = 3;
};

// Parses a probe (livenessProbe, ...) or a lifecycle handler (preStop);
// named ports resolve through the container's ports. kNone when absent.
ProbeSpec ParseProbe(const nlohmann::json& probe, const nlohmann::json& container);

struct ProbeResult {
  bool success = false;
  std::string message;  // why it failed
};

// Runs the probe once against `container_id` in a pod at `pod_ip`.
ProbeResult RunProbe(const ProbeSpec& probe, runtime::PodRuntime& runtime, const std::string& container_id,
                     const std::string& pod_ip, std::chrono::milliseconds timeout);

}  // namespace kelpie::kubelet
