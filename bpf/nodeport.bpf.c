// SPDX-License-Identifier: GPL-2.0
/* NodePort and externalIP translation on a node's interfaces (tc ingress).
 *
 * Traffic from outside the node reaches a frontend (node address or
 * externalIP : port : protocol). The first packet of a flow picks a backend,
 * stores two conntrack entries (client side and reply side) and every packet
 * is rewritten per packet: DNAT to the backend plus, under
 * externalTrafficPolicy Cluster, SNAT to the frontend's snat_address so the
 * reply comes back through this node; under Local the client address is kept
 * (the control plane lists only this node's backends). Replies are matched on
 * their own conntrack entry and translated back to the frontend. After the
 * rewrite a FIB lookup picks the output interface and the packet is
 * redirected there (bpf_redirect_neigh resolves the next hop): a packet whose
 * source is now a local address could not go up the stack's forwarding path.
 *
 * The same program runs on the external interfaces (client traffic, replies
 * of backends on other nodes) and on the interface facing local backends
 * (the CNI bridge: replies of local backends). Stale conntrack entries are
 * swept by user space (dataplane/nodeport_program.cc) by state and age;
 * the LRU maps evict the oldest when full. Layout in kelpie/nodeport_abi.h. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "kelpie/nodeport_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define NP_ETH_HLEN 14
#define NP_ETH_P_IP 0x0800
#define NP_IPPROTO_TCP 6
#define NP_IPPROTO_UDP 17
#define NP_AF_INET 2
#define NP_TC_ACT_OK 0
#define NP_TC_ACT_SHOT 2
#define NP_IP_CSUM_OFF (NP_ETH_HLEN + 10)
#define NP_IP_SRC_OFF (NP_ETH_HLEN + 12)
#define NP_IP_DST_OFF (NP_ETH_HLEN + 16)
#define NP_TCP_FIN 0x01
#define NP_TCP_SYN 0x02
#define NP_TCP_RST 0x04
#define NP_TCP_ACK 0x10
#define NP_SNAT_ATTEMPTS 16

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, KELPIE_NP_DEFAULT_MAX_FRONTENDS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct kelpie_np_frontend_key);
  __type(value, struct kelpie_np_frontend_value);
} np_frontends SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, KELPIE_NP_DEFAULT_MAX_BACKENDS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct kelpie_np_backend_key);
  __type(value, struct kelpie_np_backend);
} np_backends SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, KELPIE_NP_DEFAULT_MAX_CT);
  __type(key, struct kelpie_np_ct_key);
  __type(value, struct kelpie_np_ct_value);
} np_conntrack SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, KELPIE_NP_REASON_MAX);
  __type(key, __u32);
  __type(value, __u64);
} np_reasons SEC(".maps");

static __always_inline void count(__u32 reason) {
  __u64* c = bpf_map_lookup_elem(&np_reasons, &reason);
  if (c) *c += 1;
}

struct np_packet {
  struct kelpie_np_ct_key tuple;
  __u32 l4_off;
  __u32 csum_off;
  __u16 tot_len;
  __u8 tcp_flags;
};

/* Reads the IPv4 TCP/UDP tuple; returns 0 when the packet is one we handle. */
static __always_inline int parse(struct __sk_buff* skb, struct np_packet* p) {
  __u16 proto = 0;
  if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)) < 0) return -1;
  if (proto != bpf_htons(NP_ETH_P_IP)) return -1;
  struct iphdr ip;
  if (bpf_skb_load_bytes(skb, NP_ETH_HLEN, &ip, sizeof(ip)) < 0) return -1;
  if (ip.ihl < 5) return -1;
  /* Fragments after the first carry no ports: not ours. */
  if (ip.frag_off & bpf_htons(0x3fff)) return -1;
  if (ip.protocol != NP_IPPROTO_TCP && ip.protocol != NP_IPPROTO_UDP) return -1;
  p->l4_off = NP_ETH_HLEN + ip.ihl * 4;
  __u16 ports[2];
  if (bpf_skb_load_bytes(skb, p->l4_off, ports, sizeof(ports)) < 0) return -1;
  p->tuple.saddr = ip.saddr;
  p->tuple.daddr = ip.daddr;
  p->tuple.sport = ports[0];
  p->tuple.dport = ports[1];
  p->tuple.protocol = ip.protocol;
  p->tot_len = bpf_ntohs(ip.tot_len);
  p->tcp_flags = 0;
  if (ip.protocol == NP_IPPROTO_TCP) {
    p->csum_off = p->l4_off + 16;
    if (bpf_skb_load_bytes(skb, p->l4_off + 13, &p->tcp_flags, 1) < 0) return -1;
  } else {
    p->csum_off = p->l4_off + 6;
  }
  return 0;
}

static __always_inline int rewrite_addr(struct __sk_buff* skb, struct np_packet* p, __u32 off, __u32 from, __u32 to) {
  if (from == to) return 0;
  __u64 l4flags = BPF_F_PSEUDO_HDR | sizeof(to);
  if (p->tuple.protocol == NP_IPPROTO_UDP) l4flags |= BPF_F_MARK_MANGLED_0;
  if (bpf_l4_csum_replace(skb, p->csum_off, from, to, l4flags) < 0) return -1;
  if (bpf_l3_csum_replace(skb, NP_IP_CSUM_OFF, from, to, sizeof(to)) < 0) return -1;
  return bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0);
}

static __always_inline int rewrite_port(struct __sk_buff* skb, struct np_packet* p, __u32 off, __u16 from, __u16 to) {
  if (from == to) return 0;
  __u64 l4flags = sizeof(to);
  if (p->tuple.protocol == NP_IPPROTO_UDP) l4flags |= BPF_F_MARK_MANGLED_0;
  if (bpf_l4_csum_replace(skb, p->csum_off, from, to, l4flags) < 0) return -1;
  return bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0);
}

/* Rewrites the packet to the tuple an entry names. */
static __always_inline int translate(struct __sk_buff* skb, struct np_packet* p, const struct kelpie_np_ct_value* v) {
  if (rewrite_addr(skb, p, NP_IP_SRC_OFF, p->tuple.saddr, v->nat_saddr) < 0) return -1;
  if (rewrite_addr(skb, p, NP_IP_DST_OFF, p->tuple.daddr, v->nat_daddr) < 0) return -1;
  if (rewrite_port(skb, p, p->l4_off, p->tuple.sport, v->nat_sport) < 0) return -1;
  if (rewrite_port(skb, p, p->l4_off + 2, p->tuple.dport, v->nat_dport) < 0) return -1;
  return 0;
}

/* Sends the translated packet out of the interface the FIB names; the
 * kernel resolves the next hop's MAC address. */
static __always_inline int forward(struct __sk_buff* skb, struct np_packet* p, const struct kelpie_np_ct_value* v) {
  struct bpf_fib_lookup fib = {};
  fib.family = NP_AF_INET;
  fib.l4_protocol = p->tuple.protocol;
  fib.sport = v->nat_sport;
  fib.dport = v->nat_dport;
  fib.tot_len = p->tot_len;
  fib.ipv4_src = v->nat_saddr;
  fib.ipv4_dst = v->nat_daddr;
  fib.ifindex = skb->ingress_ifindex;
  long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
  if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) {
    count(KELPIE_NP_FIB_PASS);
    return NP_TC_ACT_OK;
  }
  return bpf_redirect_neigh(fib.ifindex, 0, 0, 0);
}

static __always_inline void track_state(struct kelpie_np_ct_value* v, __u8 tcp_flags, __u8 protocol) {
  v->last_seen_ns = bpf_ktime_get_ns();
  if (protocol != NP_IPPROTO_TCP) {
    v->state = KELPIE_NP_CT_ESTABLISHED;
    return;
  }
  if (tcp_flags & (NP_TCP_FIN | NP_TCP_RST)) {
    v->state = KELPIE_NP_CT_CLOSING;
  } else if (v->state == KELPIE_NP_CT_NEW && (tcp_flags & NP_TCP_ACK) && !(tcp_flags & NP_TCP_SYN)) {
    v->state = KELPIE_NP_CT_ESTABLISHED;
  } else if (v->state == KELPIE_NP_CT_CLOSING && (tcp_flags & NP_TCP_SYN) && !(tcp_flags & NP_TCP_ACK)) {
    v->state = KELPIE_NP_CT_NEW; /* the client reuses the port: a new connection */
  }
}

static __always_inline int new_connection(struct __sk_buff* skb, struct np_packet* p,
                                          const struct kelpie_np_frontend_value* fe) {
  if (fe->backend_count == 0) {
    count(KELPIE_NP_DROP_NO_BACKEND);
    return NP_TC_ACT_SHOT;
  }
  struct kelpie_np_backend_key bk = {.service_id = fe->service_id,
                                     .index = bpf_get_prandom_u32() % fe->backend_count};
  struct kelpie_np_backend* be = bpf_map_lookup_elem(&np_backends, &bk);
  if (!be) {
    count(KELPIE_NP_DROP_BACKEND_MISSING);
    return NP_TC_ACT_SHOT;
  }
  __u64 now = bpf_ktime_get_ns();
  __u8 state = p->tuple.protocol == NP_IPPROTO_TCP ? KELPIE_NP_CT_NEW : KELPIE_NP_CT_ESTABLISHED;
  int local = fe->flags & KELPIE_NP_FRONTEND_LOCAL;
  __u32 src = local ? p->tuple.saddr : fe->snat_address;
  __u16 sport = p->tuple.sport;

  struct kelpie_np_ct_key reply_key = {.saddr = be->address, .daddr = src, .sport = be->port,
                                       .protocol = p->tuple.protocol};
  struct kelpie_np_ct_value reply = {.last_seen_ns = now, .nat_saddr = p->tuple.daddr,
                                     .nat_daddr = p->tuple.saddr, .nat_sport = p->tuple.dport,
                                     .nat_dport = p->tuple.sport, .service_id = fe->service_id,
                                     .flags = KELPIE_NP_CT_FLAG_REPLY, .state = state};
  /* The reply entry doubles as the SNAT port reservation: BPF_NOEXIST fails
   * when another flow already owns (backend, node address, port). Under
   * Local the client's own tuple is unique. */
  int stored = 0;
  for (int i = 0; i < NP_SNAT_ATTEMPTS; i++) {
    reply_key.dport = sport;
    if (bpf_map_update_elem(&np_conntrack, &reply_key, &reply, BPF_NOEXIST) == 0) {
      stored = 1;
      break;
    }
    if (local) break;
    sport = bpf_htons(KELPIE_NP_SNAT_PORT_MIN + bpf_get_prandom_u32() % KELPIE_NP_SNAT_PORT_RANGE);
  }
  if (!stored) {
    count(local ? KELPIE_NP_DROP_CT_FULL : KELPIE_NP_DROP_SNAT_EXHAUSTED);
    return NP_TC_ACT_SHOT;
  }
  struct kelpie_np_ct_value fwd = {.last_seen_ns = now, .nat_saddr = src, .nat_daddr = be->address,
                                   .nat_sport = sport, .nat_dport = be->port,
                                   .service_id = fe->service_id, .state = state};
  if (bpf_map_update_elem(&np_conntrack, &p->tuple, &fwd, BPF_ANY) != 0) {
    bpf_map_delete_elem(&np_conntrack, &reply_key);
    count(KELPIE_NP_DROP_CT_FULL);
    return NP_TC_ACT_SHOT;
  }
  if (translate(skb, p, &fwd) < 0) {
    count(KELPIE_NP_DROP_NAT_FAILED);
    return NP_TC_ACT_SHOT;
  }
  count(KELPIE_NP_NEW_CONNECTION);
  return forward(skb, p, &fwd);
}

SEC("tc")
int kelpie_nodeport_ingress(struct __sk_buff* skb) {
  struct np_packet p = {};
  if (parse(skb, &p) != 0) return NP_TC_ACT_OK;

  struct kelpie_np_ct_value* tracked = bpf_map_lookup_elem(&np_conntrack, &p.tuple);
  if (tracked) {
    struct kelpie_np_ct_value v = *tracked;
    /* A client reusing its port after the old connection closed gets a
     * fresh backend choice only through the frontend path: a closing entry
     * seeing a new SYN is reopened (same backend, same SNAT port). */
    track_state(tracked, p.tcp_flags, p.tuple.protocol);
    count((v.flags & KELPIE_NP_CT_FLAG_REPLY) ? KELPIE_NP_CT_REPLY : KELPIE_NP_CT_FORWARD);
    if (translate(skb, &p, &v) < 0) {
      count(KELPIE_NP_DROP_NAT_FAILED);
      return NP_TC_ACT_SHOT;
    }
    return forward(skb, &p, &v);
  }

  struct kelpie_np_frontend_key fk = {.address = p.tuple.daddr, .port = p.tuple.dport,
                                      .protocol = p.tuple.protocol};
  struct kelpie_np_frontend_value* fe = bpf_map_lookup_elem(&np_frontends, &fk);
  if (!fe) return NP_TC_ACT_OK;
  return new_connection(skb, &p, fe);
}
