/* ABI of bpf/nodeport.bpf.c: NodePort and externalIP traffic arriving on a
 * node's interfaces, translated per packet by tc programs with BPF
 * connection tracking (the socket-level balancer in sock_lb.bpf.c cannot see
 * traffic that does not come from a local socket).
 *
 * Addresses and ports are in network byte order, as in the packet. */
#pragma once

#include "kelpie/types.h"

/* A frontend: node address (or externalIP), port, protocol. */
struct kelpie_np_frontend_key {
  __u32 address;
  __u16 port;
  __u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
  __u8 pad;
};

/* kelpie_np_frontend_value.flags */
#define KELPIE_NP_FRONTEND_LOCAL 0x1 /* externalTrafficPolicy Local: no SNAT */

struct kelpie_np_frontend_value {
  __u32 service_id;     /* key of the backend list */
  __u32 backend_count;  /* backends [0, backend_count); 0 = drop and count */
  __u32 snat_address;   /* source address towards backends (policy Cluster) */
  __u16 flags;
  __u16 pad;
};

struct kelpie_np_backend_key {
  __u32 service_id;
  __u32 index;
};

struct kelpie_np_backend {
  __u32 address;
  __u16 port;
  __u16 pad;
};

/* Connection tracking: one entry per direction, keyed on the tuple as the
 * packet carries it on arrival; the value is the tuple to rewrite it to. */
struct kelpie_np_ct_key {
  __u32 saddr;
  __u32 daddr;
  __u16 sport;
  __u16 dport;
  __u8 protocol;
  __u8 pad[3];
};

/* kelpie_np_ct_value.flags */
#define KELPIE_NP_CT_FLAG_REPLY 0x1 /* entry translates backend replies */

/* kelpie_np_ct_value.state */
enum kelpie_np_ct_state {
  KELPIE_NP_CT_NEW = 0,         /* TCP: only a SYN seen so far */
  KELPIE_NP_CT_ESTABLISHED = 1, /* TCP: packets both ways / UDP: any */
  KELPIE_NP_CT_CLOSING = 2,     /* TCP: FIN or RST seen */
};

struct kelpie_np_ct_value {
  __u64 last_seen_ns; /* bpf_ktime_get_ns(), CLOCK_MONOTONIC */
  __u32 nat_saddr;
  __u32 nat_daddr;
  __u16 nat_sport;
  __u16 nat_dport;
  __u32 service_id;
  __u8 flags;
  __u8 state;
  __u16 pad;
};

/* Per-CPU counters (array indexed by reason). */
enum kelpie_np_reason {
  KELPIE_NP_NEW_CONNECTION = 0,  /* new flow translated to a backend */
  KELPIE_NP_CT_FORWARD = 1,      /* packet of a tracked flow, client side */
  KELPIE_NP_CT_REPLY = 2,        /* backend reply reverse-translated */
  KELPIE_NP_DROP_NO_BACKEND = 3, /* frontend without ready backends */
  KELPIE_NP_DROP_BACKEND_MISSING = 4, /* backend list entry absent */
  KELPIE_NP_DROP_SNAT_EXHAUSTED = 5,  /* no free SNAT source port found */
  KELPIE_NP_DROP_CT_FULL = 6,    /* conntrack entry could not be stored */
  KELPIE_NP_FIB_PASS = 7,        /* FIB lookup failed: left to the stack */
  KELPIE_NP_DROP_NAT_FAILED = 8, /* rewriting the packet failed */
  KELPIE_NP_REASON_MAX = 9,
};

#define KELPIE_NP_DEFAULT_MAX_FRONTENDS 16384
#define KELPIE_NP_DEFAULT_MAX_BACKENDS 65536
#define KELPIE_NP_DEFAULT_MAX_CT 262144
/* SNAT source ports are chosen in [MIN, MIN + RANGE). */
#define KELPIE_NP_SNAT_PORT_MIN 40000
#define KELPIE_NP_SNAT_PORT_RANGE 20000
