/* The cgroup v2 id of the cgroup a socket was created in (what
 * bpf_skb_cgroup_id() returns for its packets). */
#pragma once

#include <bpf/bpf_core_read.h>

static __always_inline __u64 kelpie_sock_cgroup_id(const struct sock* sk) {
  if (!sk) return 0;
  struct cgroup* cg = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
  if (!cg) return 0;
  return BPF_CORE_READ(cg, kn, id);
}
