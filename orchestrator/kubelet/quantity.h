// Kubernetes resource quantities ("100m", "64Mi", "1.5G", "2e3") as the
// kubelet needs them: whole milli-units, rounded up as the API rounds.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace kelpie::kubelet {

// The quantity times 1000 ("100m" -> 100, "2" -> 2000, "1Ki" -> 1024000).
absl::StatusOr<int64_t> ParseQuantityMillis(const std::string& quantity);

}  // namespace kelpie::kubelet
