// Image references as Kubernetes users write them, normalized the way the
// Docker and containerd tools do: "busybox" -> "docker.io/library/busybox:latest".
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kelpie::image {

// Fills in the registry (docker.io), the "library/" namespace for official
// images and the ":latest" tag; keeps "@sha256:..." digests. Rejects what a
// registry would (upper case, empty components, bad tags).
absl::StatusOr<std::string> NormalizeReference(absl::string_view reference);

}  // namespace kelpie::image
