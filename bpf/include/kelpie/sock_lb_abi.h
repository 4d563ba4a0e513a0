/* ABI of bpf/sock_lb.bpf.c, socket-level service load balancing: the maps
 * the service proxy programs and the cgroup sock_addr programs read.
 *
 * Addresses and ports are stored in network byte order, exactly as they
 * appear in struct bpf_sock_addr (user_ip4, user_port), so the programs
 * never convert. */
#pragma once

#include "kelpie/types.h"

/* Service frontend: a (virtual address, port, protocol) a client connects to. */
struct kelpie_lb_service_key {
  __u32 address; /* IPv4, network order */
  __u16 port;    /* network order */
  __u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
  __u8 pad;
};

/* kelpie_lb_service_value.flags */
#define KELPIE_LB_SERVICE_AFFINITY 0x1 /* ClientIP session affinity */
#define KELPIE_LB_SERVICE_MAGLEV 0x2   /* slots hold a Maglev lookup table */
#define KELPIE_LB_SERVICE_EXTERNAL 0x4 /* frontend is an externalIP */
#define KELPIE_LB_SERVICE_LOCAL 0x8    /* traffic policy Local: only node-local backends */

struct kelpie_lb_service_value {
  __u32 service_id;   /* stable id of this frontend; key of slots and stats */
  __u32 slot_count;   /* slots [0, slot_count) are valid; 0 = no ready backend */
  __u32 affinity_timeout_s;
  __u16 flags;
  __u16 pad;
};

/* Slot `slot` of service `service_id` names a backend: a plain list of the
 * ready backends (random selection) or a Maglev table (consistent hashing). */
struct kelpie_lb_slot_key {
  __u32 service_id;
  __u32 slot;
};

struct kelpie_lb_backend {
  __u32 address; /* IPv4, network order */
  __u16 port;    /* network order */
  __u8 protocol;
  __u8 flags;
};

/* Reverse translation, written at connect/sendmsg time: replies from the
 * backend (recvmsg) and getpeername show the service address instead. */
struct kelpie_lb_revnat_key {
  __u64 socket_cookie;
  __u32 backend_address;
  __u16 backend_port;
  __u16 pad;
};

struct kelpie_lb_revnat_value {
  __u32 service_address;
  __u16 service_port;
  __u16 pad;
};

/* ClientIP affinity. In socket-level balancing the client is identified by
 * its network namespace (one pod = one netns; the host is one client). */
struct kelpie_lb_affinity_key {
  __u64 client_netns_cookie;
  __u32 service_id;
  __u32 pad;
};

struct kelpie_lb_affinity_value {
  __u64 last_used_ns; /* bpf_ktime_get_ns() */
  __u32 backend_id;
  __u32 pad;
};

/* Per-service counters (per-CPU hash keyed by service id). */
struct kelpie_lb_service_stats {
  __u64 translated;  /* connects/sendmsgs sent to a backend */
  __u64 no_backend;  /* refused: no ready backend */
};

/* Why a hook let a call pass untranslated or refused it (per-CPU array). */
enum kelpie_lb_reason {
  KELPIE_LB_TRANSLATED = 0,          /* not a skip: translated to a backend */
  KELPIE_LB_SKIP_NOT_SERVICE = 1,    /* destination is no service frontend */
  KELPIE_LB_SKIP_PROTOCOL = 2,       /* neither TCP nor UDP */
  KELPIE_LB_REFUSE_NO_BACKEND = 3,   /* service has no ready backend: ECONNREFUSED */
  KELPIE_LB_REFUSE_SLOT_MISSING = 4, /* slot entry absent (map being rewritten) */
  KELPIE_LB_REFUSE_BACKEND_MISSING = 5, /* slot names an unknown backend */
  KELPIE_LB_AFFINITY_HIT = 6,        /* not a skip: affinity reused a backend */
  KELPIE_LB_AFFINITY_STALE = 7,      /* affinity entry expired or backend gone */
  KELPIE_LB_REVNAT_UPDATE_FAILED = 8, /* translated, but reverse entry not stored */
  KELPIE_LB_SKIP_NO_REVNAT = 9,      /* recvmsg/getpeername: no reverse entry */
  KELPIE_LB_REVNAT_APPLIED = 10,     /* not a skip: reply/peer shown as service */
  KELPIE_LB_STATS_UPDATE_FAILED = 11, /* per-service stats entry not created */
  KELPIE_LB_SKIP_NATIVE_IPV6 = 12,   /* v6 hook, address not IPv4-mapped */
  KELPIE_LB_REVNAT_RELEASED = 13,    /* not a skip: reverse entry removed at close */
  KELPIE_LB_REASON_MAX = 14,
};

/* Default sizes (the loader may change max_entries before load). */
#define KELPIE_LB_DEFAULT_MAX_SERVICES 65536
#define KELPIE_LB_DEFAULT_MAX_BACKENDS 65536
#define KELPIE_LB_DEFAULT_MAX_SLOTS 262144
#define KELPIE_LB_DEFAULT_MAX_REVNAT 65536
#define KELPIE_LB_DEFAULT_MAX_AFFINITY 65536
