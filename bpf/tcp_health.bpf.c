// SPDX-License-Identifier: GPL-2.0
/* TCP health from raw tracepoints (no tracefs needed): connect latency,
 * connection lifetime, resets, retransmits, sampled RTT and cwnd, and
 * kernel drop reasons. Everything is aggregated in per-CPU maps that the
 * exporter reads at scrape time; nothing is sent to user space per event. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "kelpie/flow_abi.h"
#include "lib/log2_hist.h"
#include "lib/sock_cgroup.h"

char LICENSE[] SEC("license") = "GPL";

/* 0: every socket of the node; else only sockets created in this cgroup. */
const volatile __u64 filter_cgroup_id = 0;
/* tcp_probe fires per ACK: keep one sample in this many (per CPU). */
const volatile __u32 probe_sample_every = 16;

/* Linux TCP states (include/net/tcp_states.h). */
#define KELPIE_TCP_ESTABLISHED 1
#define KELPIE_TCP_SYN_SENT 2
#define KELPIE_TCP_SYN_RECV 3
#define KELPIE_TCP_CLOSE 7

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, KELPIE_TCP_HIST_MAX);
  __type(key, __u32);
  __type(value, struct kelpie_log2_hist);
} tcp_hists SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, KELPIE_TCP_COUNTER_MAX);
  __type(key, __u32);
  __type(value, __u64);
} tcp_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, KELPIE_DROP_REASON_SLOTS);
  __type(key, __u32);
  __type(value, __u64);
} drop_reasons SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64); /* struct sock address */
  __type(value, struct kelpie_tcp_sock_times);
} tcp_socks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} probe_tick SEC(".maps");

static __always_inline void count(__u32 counter) {
  __u64* n = bpf_map_lookup_elem(&tcp_counters, &counter);
  if (n) *n += 1;
}

static __always_inline void observe(__u32 hist, __u64 value) {
  struct kelpie_log2_hist* h = bpf_map_lookup_elem(&tcp_hists, &hist);
  if (h) kelpie_log2_add(h, value);
}

static __always_inline bool watched(const struct sock* sk) {
  if (filter_cgroup_id == 0) return true;
  if (kelpie_sock_cgroup_id(sk) == filter_cgroup_id) return true;
  count(KELPIE_TCP_SKIP_OTHER_CGROUP);
  return false;
}

static __always_inline bool is_tcp(const struct sock* sk) {
  return BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP;
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(tcp_state_change, const struct sock* sk, int oldstate, int newstate) {
  if (!is_tcp(sk) || !watched(sk)) return 0;
  __u64 key = (__u64)sk;
  __u64 now = bpf_ktime_get_ns();

  if (newstate == KELPIE_TCP_SYN_SENT) {
    count(KELPIE_TCP_CONNECT_ATTEMPTS);
    struct kelpie_tcp_sock_times t = {.syn_sent_ns = now};
    if (bpf_map_update_elem(&tcp_socks, &key, &t, BPF_ANY) != 0) count(KELPIE_TCP_SKIP_SOCKET_MAP_FULL);
    return 0;
  }
  if (newstate == KELPIE_TCP_ESTABLISHED) {
    struct kelpie_tcp_sock_times* t = bpf_map_lookup_elem(&tcp_socks, &key);
    if (oldstate == KELPIE_TCP_SYN_SENT) {
      count(KELPIE_TCP_CONNECTS);
      if (t && t->syn_sent_ns) observe(KELPIE_TCP_HIST_CONNECT_NS, now - t->syn_sent_ns);
    } else if (oldstate == KELPIE_TCP_SYN_RECV) {
      count(KELPIE_TCP_ACCEPTS);
    }
    if (t) {
      t->established_ns = now;
    } else {
      struct kelpie_tcp_sock_times fresh = {.established_ns = now};
      if (bpf_map_update_elem(&tcp_socks, &key, &fresh, BPF_ANY) != 0) count(KELPIE_TCP_SKIP_SOCKET_MAP_FULL);
    }
    return 0;
  }
  if (newstate == KELPIE_TCP_CLOSE) {
    if (oldstate == KELPIE_TCP_SYN_SENT) count(KELPIE_TCP_CONNECT_FAILURES);
    else count(KELPIE_TCP_CLOSES);
    struct kelpie_tcp_sock_times* t = bpf_map_lookup_elem(&tcp_socks, &key);
    if (t) {
      if (t->established_ns) observe(KELPIE_TCP_HIST_LIFETIME_NS, now - t->established_ns);
      bpf_map_delete_elem(&tcp_socks, &key);
    }
  }
  return 0;
}

SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit, const struct sock* sk, const struct sk_buff* skb, int err) {
  if (!watched(sk)) return 0;
  count(KELPIE_TCP_RETRANSMITS);
  return 0;
}

SEC("raw_tp/tcp_receive_reset")
int BPF_PROG(tcp_reset_received, struct sock* sk) {
  if (!watched(sk)) return 0;
  count(KELPIE_TCP_RESETS_RECEIVED);
  return 0;
}

SEC("raw_tp/tcp_send_reset")
int BPF_PROG(tcp_reset_sent, const struct sock* sk, const struct sk_buff* skb) {
  /* Resets for packets that found no socket have sk == NULL: they count
   * for the node only. */
  if (sk && !watched(sk)) return 0;
  if (!sk && filter_cgroup_id != 0) return 0;
  count(KELPIE_TCP_RESETS_SENT);
  return 0;
}

SEC("raw_tp/tcp_probe")
int BPF_PROG(tcp_probe_sample, struct sock* sk, const struct sk_buff* skb) {
  __u32 zero = 0;
  __u64* tick = bpf_map_lookup_elem(&probe_tick, &zero);
  if (!tick) return 0;
  *tick += 1;
  if (probe_sample_every > 1 && (*tick % probe_sample_every) != 0) return 0;
  if (!watched(sk)) return 0;
  const struct tcp_sock* tp = (const struct tcp_sock*)sk;
  __u32 srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3; /* stored << 3 */
  __u32 cwnd = BPF_CORE_READ(tp, snd_cwnd);
  observe(KELPIE_TCP_HIST_SRTT_US, srtt_us);
  observe(KELPIE_TCP_HIST_CWND, cwnd);
  count(KELPIE_TCP_PROBE_SAMPLES);
  return 0;
}

SEC("raw_tp/kfree_skb")
int BPF_PROG(skb_dropped, struct sk_buff* skb, void* location, enum skb_drop_reason reason) {
  __u32 slot = (__u32)reason;
  if (slot >= KELPIE_DROP_REASON_SLOTS) slot = KELPIE_DROP_REASON_SLOTS - 1;
  __u64* n = bpf_map_lookup_elem(&drop_reasons, &slot);
  if (n) *n += 1;
  return 0;
}
