// A container's environment and argv as the kubelet builds them from the
// pod spec: service links, envFrom, env (value with $(VAR) references,
// fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef), then
// $(VAR) expansion of command and args.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "orchestrator/kubelet/pod_api.h"

namespace kelpie::kubelet {

using EnvList = std::vector<std::pair<std::string, std::string>>;

// What the downward API can expose besides the pod object itself.
struct PodEnvContext {
  std::string pod_ip;
  std::string host_ip;
  // Used for limits.* when a container sets no limit (the node's allocatable).
  int64_t node_cpu_millis = 0;
  int64_t node_memory_bytes = 0;
};

// Kubernetes' $(VAR) syntax: $(NAME) becomes lookup(NAME) when it has a
// value and stays as written otherwise; $$ is a literal $.
std::string ExpandVars(const std::string& input,
                       const std::function<std::optional<std::string>(const std::string&)>& lookup);

// A downward API field: metadata.name/namespace/uid, metadata.labels['k'],
// metadata.annotations['k'], metadata.labels, metadata.annotations,
// spec.nodeName, spec.serviceAccountName, status.podIP(s), status.hostIP(s).
absl::StatusOr<std::string> PodFieldValue(const nlohmann::json& pod, const std::string& field_path,
                                          const PodEnvContext& context);

// A resourceFieldRef (limits.cpu, requests.memory, ...) of `container_name`
// scaled by `divisor` and rounded up, as the kubelet does.
absl::StatusOr<std::string> ResourceFieldValue(const nlohmann::json& pod, const std::string& container_name,
                                               const std::string& resource, const std::string& divisor,
                                               const PodEnvContext& context);

// The variables Kubernetes injects for each service with a cluster IP:
// <NAME>_SERVICE_HOST, <NAME>_SERVICE_PORT[_<PORT NAME>], <NAME>_PORT and
// <NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR].
EnvList ServiceEnvironment(const std::vector<nlohmann::json>& services);

// The container's complete environment (what goes into config.json beside
// the image's own). Fails (CreateContainerConfigError) when a referenced
// configMap, secret or key is missing and not optional.
absl::StatusOr<EnvList> ContainerEnvironment(const nlohmann::json& pod, const nlohmann::json& container,
                                             const PodEnvContext& context, PodApi& api);

// The data of a configMap (data + binaryData) or secret (base64-decoded
// data) by key.
std::map<std::string, std::string> ConfigMapOrSecretData(const nlohmann::json& obj, bool secret);

// command and args with $(VAR) references replaced from `env`.
std::vector<std::string> ExpandCommand(const std::vector<std::string>& words, const EnvList& env);

}  // namespace kelpie::kubelet
