// Reading BPF per-CPU maps from user space: one lookup returns a value per
// possible CPU, which callers usually sum.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstdint>
#include <vector>

namespace kelpie::dataplane {

inline int PossibleCpus() {
  static const int n = [] {
    int cpus = libbpf_num_possible_cpus();
    return cpus > 0 ? cpus : 1;
  }();
  return n;
}

// Looks `key` up in a per-CPU map of `Value`; empty when absent.
template <typename Key, typename Value>
std::vector<Value> LookupPerCpu(int map_fd, const Key& key) {
  std::vector<Value> values(static_cast<size_t>(PossibleCpus()));
  if (bpf_map_lookup_elem(map_fd, &key, values.data()) != 0) return {};
  return values;
}

// Sum over CPUs of a per-CPU array of __u64 counters at `index`.
inline uint64_t SumPerCpuCounter(int map_fd, uint32_t index) {
  uint64_t sum = 0;
  for (__u64 v : LookupPerCpu<uint32_t, __u64>(map_fd, index)) sum += v;
  return sum;
}

}  // namespace kelpie::dataplane
