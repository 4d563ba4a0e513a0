// Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of
// `size` (prime) entries filled from each backend's permutation, so every
// node computing it from the same backend identities gets the same table,
// and adding or removing one backend moves only about 1/N of the entries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie::service_proxy {

// `identities` are stable backend names (e.g. "10.42.1.5:8080/tcp"); the
// result holds, per entry, an index into `identities`. Deterministic across
// processes and machines (fixed hash functions, identities sorted first by
// the caller or not: order does not change the table).
absl::StatusOr<std::vector<uint32_t>> MaglevTable(const std::vector<std::string>& identities, uint32_t size);

bool IsPrime(uint32_t n);

}  // namespace kelpie::service_proxy
