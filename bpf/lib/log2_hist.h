/* Log2 histogram helpers shared by BPF programs. */
#pragma once

#include "kelpie/flow_abi.h"

/* Index of the slot for v: 0 for 0, else floor(log2(v)) + 1, capped. */
static __always_inline __u32 kelpie_log2_slot(__u64 v) {
  __u32 slot = 0;
  if (v == 0) return 0;
#pragma unroll
  for (int shift = 32; shift > 0; shift >>= 1) {
    if (v >= (1ULL << shift)) {
      v >>= shift;
      slot += shift;
    }
  }
  slot += 1;
  return slot < KELPIE_LOG2_SLOTS ? slot : KELPIE_LOG2_SLOTS - 1;
}

/* Adds v to a per-CPU histogram value (no atomics needed). */
static __always_inline void kelpie_log2_add(struct kelpie_log2_hist* h, __u64 v) {
  __u32 slot = kelpie_log2_slot(v);
  if (slot < KELPIE_LOG2_SLOTS) h->slots[slot] += 1;
  h->count += 1;
  h->sum += v;
}
