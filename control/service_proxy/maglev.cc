#include "control/service_proxy/maglev.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace kelpie::service_proxy {
namespace {

// FNV-1a 64 with a seed folded in: stable across builds and machines
// (std::hash and absl::Hash are not).
uint64_t Fnv1a(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  // Final avalanche so that nearby names spread.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

}  // namespace

bool IsPrime(uint32_t n) {
  if (n < 2) return false;
  for (uint32_t d = 2; static_cast<uint64_t>(d) * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

absl::StatusOr<std::vector<uint32_t>> MaglevTable(const std::vector<std::string>& identities, uint32_t size) {
  if (!IsPrime(size)) return absl::InvalidArgumentError(absl::StrCat("Maglev table size ", size, " is not prime"));
  const size_t n = identities.size();
  if (n == 0) return std::vector<uint32_t>();
  // Fill in identity order so that the caller's order does not matter.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return identities[a] < identities[b]; });
  std::vector<uint64_t> offset(n), skip(n), next(n, 0);
  for (size_t i = 0; i < n; ++i) {
    offset[i] = Fnv1a(identities[order[i]], 0x6d61676c65763031ULL) % size;
    skip[i] = Fnv1a(identities[order[i]], 0x736b697070657232ULL) % (size - 1) + 1;
  }
  constexpr uint32_t kEmpty = UINT32_MAX;
  std::vector<uint32_t> table(size, kEmpty);
  uint32_t filled = 0;
  // Each round gives every backend one entry; ends after `size` fills
  // (each backend's permutation visits every entry, so the inner search ends).
  while (filled < size) {
    for (size_t i = 0; i < n && filled < size; ++i) {
      uint64_t c = (offset[i] + next[i] * skip[i]) % size;
      while (table[c] != kEmpty) {
        ++next[i];
        c = (offset[i] + next[i] * skip[i]) % size;
      }
      table[c] = static_cast<uint32_t>(order[i]);
      ++next[i];
      ++filled;
    }
  }
  return table;
}

}  // namespace kelpie::service_proxy
