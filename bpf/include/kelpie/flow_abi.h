/* ABI of bpf/flow.bpf.c (per-connection flow records) and
 * bpf/tcp_health.bpf.c (TCP health histograms and counters). Every struct
 * here appears in the objects' BTF; tests/unit/bpf/bpf_abi_test.cc compares
 * sizes and member offsets with C++. */
#pragma once

#include "kelpie/types.h"

/* ---------------------------------------------------------------- flows */

/* One connection as seen from the socket that belongs to the watched
 * cgroup: "local" is that socket's end, "remote" the peer. Addresses in
 * network byte order, ports in host byte order. */
struct kelpie_flow_key {
  __u64 cgroup_id;
  __u32 local_ip;
  __u32 remote_ip;
  __u16 local_port;
  __u16 remote_port;
  __u8 protocol; /* IPPROTO_TCP / IPPROTO_UDP */
  __u8 pad[3]; /* explicit: a hash key must have no implicit padding */
};

enum kelpie_flow_verdict {
  KELPIE_VERDICT_FORWARDED = 1,
  KELPIE_VERDICT_DROPPED = 2,
};

/* Who sent the first packet of the connection. */
enum kelpie_flow_origin {
  KELPIE_ORIGIN_UNKNOWN = 0,
  KELPIE_ORIGIN_LOCAL = 1,  /* the watched socket connected (egress SYN) */
  KELPIE_ORIGIN_REMOTE = 2, /* the peer connected (ingress SYN) */
};

/* Aggregated in the kernel, per connection; counters updated atomically. */
struct kelpie_flow_stats {
  __u64 first_seen_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
  __u64 last_seen_ns;
  __u64 last_report_ns;
  __u64 tx_bytes; /* egress: IP packet length */
  __u64 rx_bytes;
  __u64 tx_packets;
  __u64 rx_packets;
  __u64 drops;            /* packets of this flow freed with a drop reason */
  /* 64-bit because BPF atomics (fetch_or, cmpxchg) need 64-bit operands
   * at the default clang CPU level. */
  __u64 tcp_flags_tx;     /* OR of TCP flag bytes seen egress */
  __u64 tcp_flags_rx;     /* ... and ingress */
  __u64 closed;           /* 1 once the close event was sent */
  __u32 last_drop_reason; /* enum skb_drop_reason of the kernel */
  __u32 origin;           /* enum kelpie_flow_origin */
};

enum kelpie_flow_event_type {
  KELPIE_FLOW_OPEN = 1,   /* first packet of a connection */
  KELPIE_FLOW_UPDATE = 2, /* periodic, for long connections */
  KELPIE_FLOW_CLOSE = 3,  /* RST, or FIN seen both ways */
  KELPIE_FLOW_DROP = 4,   /* first drop of a packet of the connection */
};

/* Pushed through the flow ring buffer. */
struct kelpie_flow_event {
  struct kelpie_flow_key key;
  struct kelpie_flow_stats stats;
  __u64 timestamp_ns;
  __u32 type;    /* enum kelpie_flow_event_type */
  __u32 verdict; /* enum kelpie_flow_verdict */
};

/* Per watched cgroup (pod) totals, read at scrape time. */
struct kelpie_flow_cgroup_stats {
  __u64 flows_opened;
  __u64 flows_closed;
  __u64 tx_bytes;
  __u64 rx_bytes;
  __u64 tx_packets;
  __u64 rx_packets;
  __u64 drops;
};

/* Why a flow program skipped or lost work (per-CPU counters). */
enum kelpie_flow_skip_reason {
  KELPIE_FLOW_SKIP_NOT_IPV4 = 0,
  KELPIE_FLOW_SKIP_SHORT_PACKET = 1,
  KELPIE_FLOW_SKIP_OTHER_PROTOCOL = 2,
  KELPIE_FLOW_SKIP_FRAGMENT = 3,
  KELPIE_FLOW_SKIP_MAP_FULL = 4,
  KELPIE_FLOW_SKIP_RINGBUF_FULL = 5,
  KELPIE_FLOW_SKIP_DROP_UNWATCHED = 6, /* freed packet of an unwatched socket */
  KELPIE_FLOW_SKIP_NOT_NETWORK_DROP = 7, /* queue purged at close, consumed */
  KELPIE_FLOW_SKIP_MAX = 8,
};

/* ----------------------------------------------------------- TCP health */

#define KELPIE_LOG2_SLOTS 64

/* Slot i counts values v with 2^(i-1) <= v < 2^i (slot 0: v == 0). */
struct kelpie_log2_hist {
  __u64 slots[KELPIE_LOG2_SLOTS];
  __u64 count;
  __u64 sum;
};

enum kelpie_tcp_hist {
  KELPIE_TCP_HIST_CONNECT_NS = 0,  /* SYN_SENT -> ESTABLISHED */
  KELPIE_TCP_HIST_LIFETIME_NS = 1, /* ESTABLISHED -> CLOSE */
  KELPIE_TCP_HIST_SRTT_US = 2,     /* tcp_probe samples of srtt */
  KELPIE_TCP_HIST_CWND = 3,        /* tcp_probe samples of snd_cwnd (segments) */
  KELPIE_TCP_HIST_MAX = 4,
};

enum kelpie_tcp_counter {
  KELPIE_TCP_CONNECT_ATTEMPTS = 0, /* -> SYN_SENT */
  KELPIE_TCP_CONNECTS = 1,         /* SYN_SENT -> ESTABLISHED */
  KELPIE_TCP_CONNECT_FAILURES = 2, /* SYN_SENT -> CLOSE */
  KELPIE_TCP_ACCEPTS = 3,          /* SYN_RECV -> ESTABLISHED */
  KELPIE_TCP_CLOSES = 4,           /* ESTABLISHED/.. -> CLOSE */
  KELPIE_TCP_RESETS_RECEIVED = 5,
  KELPIE_TCP_RESETS_SENT = 6,
  KELPIE_TCP_RETRANSMITS = 7,
  KELPIE_TCP_PROBE_SAMPLES = 8,
  KELPIE_TCP_SKIP_OTHER_CGROUP = 9, /* events of sockets outside the filter */
  KELPIE_TCP_SKIP_SOCKET_MAP_FULL = 10,
  KELPIE_TCP_COUNTER_MAX = 11,
};

/* Per socket, while it lives (keyed by the kernel socket address). */
struct kelpie_tcp_sock_times {
  __u64 syn_sent_ns;
  __u64 established_ns;
};

/* Drop counters are indexed by enum skb_drop_reason, clamped here. */
#define KELPIE_DROP_REASON_SLOTS 512
