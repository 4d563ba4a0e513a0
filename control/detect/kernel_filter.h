// The in-kernel prefilter of the sensor, derived from the loaded rules
// (Engine::DerivePrefilter): which record kinds cross to user space and
// which path prefixes opens/chmods must have.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "control/detect/engine.h"

namespace kelpie::detect {

struct KernelFilter {
  uint32_t kind_mask = 0;         // bit per kelpie_detect_kind
  uint32_t path_filter_mask = 0;  // kinds filtered on `prefixes`
  std::vector<std::string> prefixes;
};

// Exec, fork and exit always cross: they keep the process table and the
// ancestry whole. A kind's path filter is dropped (every path crosses) when
// its prefixes do not fit the kernel's table (count or length).
KernelFilter DeriveKernelFilter(const PrefilterSpec& spec, size_t max_prefixes, size_t max_prefix_len);

}  // namespace kelpie::detect
