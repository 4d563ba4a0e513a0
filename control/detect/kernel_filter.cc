#include "control/detect/kernel_filter.h"

#include <algorithm>

#include "kelpie/detect_abi.h"

namespace kelpie::detect {
namespace {

// Kernel kinds feeding each rule event type (inverse of KindToEventType).
int KindOf(EventType type) {
  switch (type) {
    case EventType::kExecve: return KELPIE_DETECT_EXEC;
    case EventType::kOpen: return KELPIE_DETECT_OPEN;
    case EventType::kConnect: return KELPIE_DETECT_CONNECT;
    case EventType::kSetuid: return KELPIE_DETECT_SETUID;
    case EventType::kSetgid: return KELPIE_DETECT_SETGID;
    case EventType::kPtrace: return KELPIE_DETECT_PTRACE;
    case EventType::kMount: return KELPIE_DETECT_MOUNT;
    case EventType::kUnshare: return KELPIE_DETECT_UNSHARE;
    case EventType::kSetns: return KELPIE_DETECT_SETNS;
    case EventType::kMemfdCreate: return KELPIE_DETECT_MEMFD_CREATE;
    case EventType::kInitModule: return KELPIE_DETECT_INIT_MODULE;
    case EventType::kBpf: return KELPIE_DETECT_BPF;
    case EventType::kChmod: return KELPIE_DETECT_CHMOD;
    default: return -1;  // no kernel source yet (accept, capset, dup, rename, unlink, umount)
  }
}

}  // namespace

KernelFilter DeriveKernelFilter(const PrefilterSpec& spec, size_t max_prefixes, size_t max_prefix_len) {
  KernelFilter f;
  f.kind_mask = (1u << KELPIE_DETECT_EXEC) | (1u << KELPIE_DETECT_FORK) | (1u << KELPIE_DETECT_EXIT);
  std::vector<std::string> prefixes;
  std::vector<int> filtered;
  for (size_t t = 0; t < kEventTypeCount; ++t) {
    const PrefilterSpec::PerType& per = spec.types[t];
    int kind = KindOf(static_cast<EventType>(t));
    if (!per.wanted || kind < 0) continue;
    f.kind_mask |= 1u << kind;
    // Exec records also feed the process table: never path-filter them.
    if (kind == KELPIE_DETECT_EXEC || per.path_prefixes.empty()) continue;
    bool fits = std::all_of(per.path_prefixes.begin(), per.path_prefixes.end(),
                            [&](const std::string& p) { return !p.empty() && p.size() <= max_prefix_len; });
    if (!fits) continue;
    filtered.push_back(kind);
    prefixes.insert(prefixes.end(), per.path_prefixes.begin(), per.path_prefixes.end());
  }
  std::sort(prefixes.begin(), prefixes.end());
  prefixes.erase(std::unique(prefixes.begin(), prefixes.end()), prefixes.end());
  if (prefixes.size() <= max_prefixes) {
    for (int kind : filtered) f.path_filter_mask |= 1u << kind;
    f.prefixes = std::move(prefixes);
  }
  return f;
}

}  // namespace kelpie::detect
