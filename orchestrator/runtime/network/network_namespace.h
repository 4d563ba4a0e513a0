// Named network namespaces kept alive by a bind mount on a file (the way
// `ip netns add` does it, but under a folder the runtime chooses), so a pod's
// namespace outlives every process in it and the agent itself.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace kelpie::runtime {

// Creates a new network namespace and bind-mounts it on `path` (the parent
// folder must exist). Fails if `path` already holds a namespace.
absl::Status CreateNetworkNamespace(const std::string& path);

// Unmounts and deletes `path`. A missing path is success (idempotent).
absl::Status RemoveNetworkNamespace(const std::string& path);

// True when `path` is a bind-mounted network namespace.
bool IsNetworkNamespace(const std::string& path);

}  // namespace kelpie::runtime
