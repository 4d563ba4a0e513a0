// SPDX-License-Identifier: GPL-2.0
/* Per-connection flow records from cgroup_skb ingress/egress on the watched
 * cgroups (pods), aggregated in an LRU hash; the ring buffer only carries
 * open, close, periodic-update and first-drop events, never one per packet.
 * A raw tracepoint on kfree_skb attributes kernel drops (with their reason)
 * to the flows of watched sockets. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "kelpie/flow_abi.h"
#include "lib/sock_cgroup.h"

char LICENSE[] SEC("license") = "GPL";

/* Long connections get an UPDATE event at most this often. */
const volatile __u64 report_interval_ns = 10ULL * 1000 * 1000 * 1000;
/* User space is woken only once this much is waiting (it also drains the
 * ring on its poll timeout): one wakeup per event would cost a context
 * switch per connection. */
const volatile __u64 wakeup_bytes = 64 * 1024;

#define KELPIE_ETH_P_IP 0x0800
#define KELPIE_TCP_FIN 0x01
#define KELPIE_TCP_SYN 0x02
#define KELPIE_TCP_RST 0x04
#define KELPIE_TCP_ACK 0x10
#define KELPIE_IP_MF 0x2000
#define KELPIE_IP_OFFSET 0x1fff

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct kelpie_flow_key);
  __type(value, struct kelpie_flow_stats);
} flows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20);
} flow_events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, KELPIE_FLOW_SKIP_MAX);
  __type(key, __u32);
  __type(value, __u64);
} flow_skips SEC(".maps");

/* Per watched cgroup totals (the exporter's per-pod counters). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64);
  __type(value, struct kelpie_flow_cgroup_stats);
} flow_cgroups SEC(".maps");

/* Cgroups whose sockets' drops are attributed (filled by user space with
 * the cgroups the skb programs are attached to). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64);
  __type(value, __u8);
} watched_cgroups SEC(".maps");

/* Keeps the event struct in BTF for the ABI test. */
struct kelpie_flow_event flow_event_layout SEC(".bss");

static __always_inline void count_skip(__u32 reason) {
  __u64* n = bpf_map_lookup_elem(&flow_skips, &reason);
  if (n) *n += 1;
}

static __always_inline struct kelpie_flow_cgroup_stats* cgroup_stats(__u64 cgroup_id) {
  struct kelpie_flow_cgroup_stats* s = bpf_map_lookup_elem(&flow_cgroups, &cgroup_id);
  if (s) return s;
  struct kelpie_flow_cgroup_stats zero = {};
  bpf_map_update_elem(&flow_cgroups, &cgroup_id, &zero, BPF_NOEXIST);
  return bpf_map_lookup_elem(&flow_cgroups, &cgroup_id);
}

static __always_inline void emit(const struct kelpie_flow_key* key, const struct kelpie_flow_stats* stats,
                                 __u32 type, __u32 verdict, __u64 now) {
  struct kelpie_flow_event* e = bpf_ringbuf_reserve(&flow_events, sizeof(*e), 0);
  if (!e) {
    count_skip(KELPIE_FLOW_SKIP_RINGBUF_FULL);
    return;
  }
  __builtin_memcpy(&e->key, key, sizeof(*key));
  __builtin_memcpy(&e->stats, stats, sizeof(*stats));
  e->timestamp_ns = now;
  e->type = type;
  e->verdict = verdict;
  __u64 waiting = bpf_ringbuf_query(&flow_events, BPF_RB_AVAIL_DATA);
  bpf_ringbuf_submit(e, waiting >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

/* Parsed L3/L4 header fields of one IPv4 packet. */
struct packet {
  __u32 saddr;
  __u32 daddr;
  __u16 sport;
  __u16 dport;
  __u8 protocol;
  __u8 tcp_flags;
  __u32 len;
};

static __always_inline int parse(struct __sk_buff* skb, struct packet* p) {
  if (skb->protocol != bpf_htons(KELPIE_ETH_P_IP)) {
    count_skip(KELPIE_FLOW_SKIP_NOT_IPV4);
    return -1;
  }
  struct iphdr ip;
  if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) != 0) {
    count_skip(KELPIE_FLOW_SKIP_SHORT_PACKET);
    return -1;
  }
  if (ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP) {
    count_skip(KELPIE_FLOW_SKIP_OTHER_PROTOCOL);
    return -1;
  }
  if (bpf_ntohs(ip.frag_off) & KELPIE_IP_OFFSET) {
    count_skip(KELPIE_FLOW_SKIP_FRAGMENT);
    return -1;
  }
  __u32 l4 = (__u32)ip.ihl * 4;
  __u8 l4hdr[14];
  __u32 need = ip.protocol == IPPROTO_TCP ? 14 : 4;
  if (need == 14) {
    if (bpf_skb_load_bytes(skb, l4, l4hdr, 14) != 0) {
      count_skip(KELPIE_FLOW_SKIP_SHORT_PACKET);
      return -1;
    }
    p->tcp_flags = l4hdr[13];
  } else {
    if (bpf_skb_load_bytes(skb, l4, l4hdr, 4) != 0) {
      count_skip(KELPIE_FLOW_SKIP_SHORT_PACKET);
      return -1;
    }
    p->tcp_flags = 0;
  }
  p->saddr = ip.saddr;
  p->daddr = ip.daddr;
  p->sport = ((__u16)l4hdr[0] << 8) | l4hdr[1];
  p->dport = ((__u16)l4hdr[2] << 8) | l4hdr[3];
  p->protocol = ip.protocol;
  p->len = skb->len;
  return 0;
}

static __always_inline void account(struct __sk_buff* skb, bool egress) {
  struct packet p = {};
  if (parse(skb, &p) != 0) return;
  __u64 now = bpf_ktime_get_ns();
  struct kelpie_flow_key key = {};
  key.cgroup_id = bpf_skb_cgroup_id(skb);
  key.protocol = p.protocol;
  if (egress) {
    key.local_ip = p.saddr;
    key.remote_ip = p.daddr;
    key.local_port = p.sport;
    key.remote_port = p.dport;
  } else {
    key.local_ip = p.daddr;
    key.remote_ip = p.saddr;
    key.local_port = p.dport;
    key.remote_port = p.sport;
  }
  bool syn_only = (p.tcp_flags & (KELPIE_TCP_SYN | KELPIE_TCP_ACK)) == KELPIE_TCP_SYN;

  struct kelpie_flow_cgroup_stats* cg = cgroup_stats(key.cgroup_id);
  struct kelpie_flow_stats* s = bpf_map_lookup_elem(&flows, &key);
  if (s && s->closed && syn_only) {
    /* The 5-tuple is reused by a new connection: start a new record. */
    bpf_map_delete_elem(&flows, &key);
    s = NULL;
  }
  if (!s) {
    struct kelpie_flow_stats fresh = {};
    fresh.first_seen_ns = now;
    fresh.last_report_ns = now;
    if (p.protocol == IPPROTO_TCP && syn_only) fresh.origin = egress ? KELPIE_ORIGIN_LOCAL : KELPIE_ORIGIN_REMOTE;
    else if (p.protocol == IPPROTO_UDP) fresh.origin = egress ? KELPIE_ORIGIN_LOCAL : KELPIE_ORIGIN_REMOTE;
    /* NOEXIST: when another CPU created it first, use theirs. */
    if (bpf_map_update_elem(&flows, &key, &fresh, BPF_NOEXIST) == 0) {
      if (cg) __sync_fetch_and_add(&cg->flows_opened, 1);
      emit(&key, &fresh, KELPIE_FLOW_OPEN, KELPIE_VERDICT_FORWARDED, now);
    }
    s = bpf_map_lookup_elem(&flows, &key);
    if (!s) {
      count_skip(KELPIE_FLOW_SKIP_MAP_FULL);
      return;
    }
  }
  s->last_seen_ns = now;
  __u64 other_flags;
  if (egress) {
    __sync_fetch_and_add(&s->tx_bytes, p.len);
    __sync_fetch_and_add(&s->tx_packets, 1);
    __sync_fetch_and_or(&s->tcp_flags_tx, (__u64)p.tcp_flags);
    other_flags = s->tcp_flags_rx;
    if (cg) {
      cg->tx_bytes += p.len;
      cg->tx_packets += 1;
    }
  } else {
    __sync_fetch_and_add(&s->rx_bytes, p.len);
    __sync_fetch_and_add(&s->rx_packets, 1);
    __sync_fetch_and_or(&s->tcp_flags_rx, (__u64)p.tcp_flags);
    other_flags = s->tcp_flags_tx;
    if (cg) {
      cg->rx_bytes += p.len;
      cg->rx_packets += 1;
    }
  }

  if (p.protocol == IPPROTO_TCP) {
    bool ends = (p.tcp_flags & KELPIE_TCP_RST) ||
                ((p.tcp_flags & KELPIE_TCP_FIN) && (other_flags & KELPIE_TCP_FIN));
    if (ends && __sync_val_compare_and_swap(&s->closed, 0, 1) == 0) {
      if (cg) __sync_fetch_and_add(&cg->flows_closed, 1);
      struct kelpie_flow_stats copy = *s;
      copy.closed = 1;
      emit(&key, &copy, KELPIE_FLOW_CLOSE, KELPIE_VERDICT_FORWARDED, now);
      return;
    }
  }
  __u64 last = s->last_report_ns;
  if (now - last >= report_interval_ns && __sync_val_compare_and_swap(&s->last_report_ns, last, now) == last) {
    struct kelpie_flow_stats copy = *s;
    emit(&key, &copy, KELPIE_FLOW_UPDATE, s->drops ? KELPIE_VERDICT_DROPPED : KELPIE_VERDICT_FORWARDED, now);
  }
}

SEC("cgroup_skb/egress")
int flow_egress(struct __sk_buff* skb) {
  account(skb, true);
  return 1; /* observe only: never drop */
}

SEC("cgroup_skb/ingress")
int flow_ingress(struct __sk_buff* skb) {
  account(skb, false);
  return 1;
}

/* A packet freed with a drop reason: when it belongs to a watched socket,
 * count it on its flow and report the first drop of the flow. */
SEC("raw_tp/kfree_skb")
int BPF_PROG(flow_skb_dropped, struct sk_buff* skb, void* location, enum skb_drop_reason reason) {
  /* A socket's queues purged when it closes are not packets the network
   * lost (CO-RE: the enum's values differ between kernels). */
  if ((bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE) &&
       reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE)) ||
      (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED) &&
       reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED))) {
    count_skip(KELPIE_FLOW_SKIP_NOT_NETWORK_DROP);
    return 0;
  }
  struct sock* sk = BPF_CORE_READ(skb, sk);
  if (!sk) return 0;
  __u64 cgroup_id = kelpie_sock_cgroup_id(sk);
  if (!bpf_map_lookup_elem(&watched_cgroups, &cgroup_id)) {
    count_skip(KELPIE_FLOW_SKIP_DROP_UNWATCHED);
    return 0;
  }
  unsigned char* head = BPF_CORE_READ(skb, head);
  __u16 nh = BPF_CORE_READ(skb, network_header);
  struct iphdr ip;
  if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) != 0) return 0;
  if (ip.version != 4 || (ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP)) return 0;
  __u8 ports[4];
  if (bpf_probe_read_kernel(ports, sizeof(ports), head + nh + (__u32)ip.ihl * 4) != 0) return 0;
  __u16 sport = ((__u16)ports[0] << 8) | ports[1];
  __u16 dport = ((__u16)ports[2] << 8) | ports[3];
  __u16 local_port = BPF_CORE_READ(sk, __sk_common.skc_num);

  struct kelpie_flow_key key = {};
  key.cgroup_id = cgroup_id;
  key.protocol = ip.protocol;
  if (sport == local_port) { /* leaving through this socket */
    key.local_ip = ip.saddr;
    key.remote_ip = ip.daddr;
    key.local_port = sport;
    key.remote_port = dport;
  } else {
    key.local_ip = ip.daddr;
    key.remote_ip = ip.saddr;
    key.local_port = dport;
    key.remote_port = sport;
  }
  __u64 now = bpf_ktime_get_ns();
  struct kelpie_flow_cgroup_stats* cg = cgroup_stats(cgroup_id);
  if (cg) cg->drops += 1;
  struct kelpie_flow_stats* s = bpf_map_lookup_elem(&flows, &key);
  if (!s) {
    struct kelpie_flow_stats lone = {};
    lone.first_seen_ns = now;
    lone.last_seen_ns = now;
    lone.drops = 1;
    lone.last_drop_reason = (__u32)reason;
    emit(&key, &lone, KELPIE_FLOW_DROP, KELPIE_VERDICT_DROPPED, now);
    return 0;
  }
  s->last_drop_reason = (__u32)reason;
  if (__sync_fetch_and_add(&s->drops, 1) == 0) {
    struct kelpie_flow_stats copy = *s;
    emit(&key, &copy, KELPIE_FLOW_DROP, KELPIE_VERDICT_DROPPED, now);
  }
  return 0;
}
