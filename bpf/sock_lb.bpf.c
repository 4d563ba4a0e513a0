// SPDX-License-Identifier: GPL-2.0
/* Socket-level service load balancing: cgroup sock_addr programs translate
 * a service frontend (virtual address, port, protocol) to one backend when
 * the socket connects or sends, so every packet already carries the backend
 * address and no per-packet NAT or connection tracking is needed. Replies
 * (recvmsg) and getpeername are translated back to the service address.
 *
 * Maps are pinned by the loader under <bpffs>/kelpie/<node>/ and programmed
 * by control/service_proxy; layout in kelpie/sock_lb_abi.h. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "kelpie/sock_lb_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define KELPIE_ECONNREFUSED 111
#define KELPIE_IPPROTO_TCP 6
#define KELPIE_IPPROTO_UDP 17

/* Configuration (rodata, set before load). */
/* errno a connect/sendmsg to a service without ready backends fails with;
 * 0 falls back to the kernel's default for a rejecting hook (EPERM). */
const volatile __u32 refuse_errno = KELPIE_ECONNREFUSED;
/* Write reverse entries for TCP connects too (getpeername shows the
 * service); UDP always needs them for recvmsg. */
const volatile __u8 tcp_revnat = 1;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, KELPIE_LB_DEFAULT_MAX_SERVICES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct kelpie_lb_service_key);
  __type(value, struct kelpie_lb_service_value);
} lb_services SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, KELPIE_LB_DEFAULT_MAX_SLOTS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct kelpie_lb_slot_key);
  __type(value, __u32);
} lb_slots SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, KELPIE_LB_DEFAULT_MAX_BACKENDS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);
  __type(value, struct kelpie_lb_backend);
} lb_backends SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, KELPIE_LB_DEFAULT_MAX_REVNAT);
  __type(key, struct kelpie_lb_revnat_key);
  __type(value, struct kelpie_lb_revnat_value);
} lb_revnat SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, KELPIE_LB_DEFAULT_MAX_AFFINITY);
  __type(key, struct kelpie_lb_affinity_key);
  __type(value, struct kelpie_lb_affinity_value);
} lb_affinity SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, KELPIE_LB_DEFAULT_MAX_SERVICES);
  __type(key, __u32);
  __type(value, struct kelpie_lb_service_stats);
} lb_service_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, KELPIE_LB_REASON_MAX);
  __type(key, __u32);
  __type(value, __u64);
} lb_reasons SEC(".maps");

static __always_inline void count(__u32 reason) {
  __u64* n = bpf_map_lookup_elem(&lb_reasons, &reason);
  if (n) *n += 1;
}

static __always_inline void count_service(__u32 service_id, int translated) {
  struct kelpie_lb_service_stats* s = bpf_map_lookup_elem(&lb_service_stats, &service_id);
  if (!s) {
    struct kelpie_lb_service_stats zero = {};
    if (bpf_map_update_elem(&lb_service_stats, &service_id, &zero, BPF_NOEXIST) != 0 &&
        bpf_map_lookup_elem(&lb_service_stats, &service_id) == 0) {
      count(KELPIE_LB_STATS_UPDATE_FAILED);
      return;
    }
    s = bpf_map_lookup_elem(&lb_service_stats, &service_id);
    if (!s) {
      count(KELPIE_LB_STATS_UPDATE_FAILED);
      return;
    }
  }
  if (translated)
    s->translated += 1;
  else
    s->no_backend += 1;
}

/* A 32-bit mix of two 64-bit values (murmur3 finalizer): the Maglev key. */
static __always_inline __u32 mix64(__u64 a, __u64 b) {
  __u64 h = a ^ (b * 0x9e3779b97f4a7c15ULL);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return (__u32)h;
}

static __always_inline struct kelpie_lb_backend* backend_by_id(__u32 id) {
  return bpf_map_lookup_elem(&lb_backends, &id);
}

/* Picks a backend for service `svc`; returns 0 and sets *out_id, or a
 * refusal reason. */
static __always_inline __u32 select_backend(struct bpf_sock_addr* ctx,
                                            const struct kelpie_lb_service_value* svc,
                                            __u32* out_id, struct kelpie_lb_backend** out) {
  __u64 netns = 0;
  struct kelpie_lb_affinity_key akey = {};
  if (svc->flags & KELPIE_LB_SERVICE_AFFINITY) {
    netns = bpf_get_netns_cookie(ctx);
    akey.client_netns_cookie = netns;
    akey.service_id = svc->service_id;
    struct kelpie_lb_affinity_value* a = bpf_map_lookup_elem(&lb_affinity, &akey);
    if (a) {
      __u64 now = bpf_ktime_get_ns();
      struct kelpie_lb_backend* b = backend_by_id(a->backend_id);
      if (b && now - a->last_used_ns <= (__u64)svc->affinity_timeout_s * 1000000000ULL) {
        a->last_used_ns = now;
        *out_id = a->backend_id;
        *out = b;
        count(KELPIE_LB_AFFINITY_HIT);
        return 0;
      }
      count(KELPIE_LB_AFFINITY_STALE);
    }
  }

  __u32 slot;
  if (svc->flags & KELPIE_LB_SERVICE_MAGLEV) {
    if (!netns) netns = bpf_get_netns_cookie(ctx);
    slot = mix64(netns, bpf_get_socket_cookie(ctx)) % svc->slot_count;
  } else {
    slot = bpf_get_prandom_u32() % svc->slot_count;
  }
  struct kelpie_lb_slot_key skey = {.service_id = svc->service_id, .slot = slot};
  __u32* id = bpf_map_lookup_elem(&lb_slots, &skey);
  if (!id) return KELPIE_LB_REFUSE_SLOT_MISSING;
  struct kelpie_lb_backend* b = backend_by_id(*id);
  if (!b) return KELPIE_LB_REFUSE_BACKEND_MISSING;
  *out_id = *id;
  *out = b;

  if (svc->flags & KELPIE_LB_SERVICE_AFFINITY) {
    struct kelpie_lb_affinity_value val = {.last_used_ns = bpf_ktime_get_ns(), .backend_id = *id};
    bpf_map_update_elem(&lb_affinity, &akey, &val, BPF_ANY);
  }
  return 0;
}

static __always_inline int refuse(__u32 reason, __u32 service_id) {
  count(reason);
  count_service(service_id, 0);
  /* A rejecting hook fails the syscall with EPERM; bpf_set_retval (kernel
   * 5.18+) replaces that errno, so clients see "connection refused" as
   * they would from kube-proxy's REJECT rule. */
  if (refuse_errno) bpf_set_retval(-(int)refuse_errno);
  return 0;
}

/* The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d) of
 * a dual-stack socket, or 0 when the address is native IPv6. */
static __always_inline __u32 mapped_ip4(struct bpf_sock_addr* ctx) {
  if (ctx->user_ip6[0] != 0 || ctx->user_ip6[1] != 0 || ctx->user_ip6[2] != bpf_htonl(0xffff)) return 0;
  return ctx->user_ip6[3];
}

/* Shared by connect4/6 and sendmsg4/6: translate a service destination.
 * `v6` says the address lives in user_ip6 as an IPv4-mapped address. */
static __always_inline int translate(struct bpf_sock_addr* ctx, int store_revnat, int v6) {
  __u8 proto = (__u8)ctx->protocol;
  if (proto != KELPIE_IPPROTO_TCP && proto != KELPIE_IPPROTO_UDP) {
    count(KELPIE_LB_SKIP_PROTOCOL);
    return 1;
  }
  __u32 daddr = v6 ? mapped_ip4(ctx) : ctx->user_ip4;
  if (v6 && daddr == 0) {
    count(KELPIE_LB_SKIP_NATIVE_IPV6);
    return 1;
  }
  struct kelpie_lb_service_key key = {
      .address = daddr, .port = (__u16)ctx->user_port, .protocol = proto};
  struct kelpie_lb_service_value* svc = bpf_map_lookup_elem(&lb_services, &key);
  if (!svc) {
    count(KELPIE_LB_SKIP_NOT_SERVICE);
    return 1;
  }
  if (svc->slot_count == 0) return refuse(KELPIE_LB_REFUSE_NO_BACKEND, svc->service_id);

  __u32 backend_id = 0;
  struct kelpie_lb_backend* b = 0;
  __u32 why = select_backend(ctx, svc, &backend_id, &b);
  if (why != 0 || !b) return refuse(why ? why : KELPIE_LB_REFUSE_BACKEND_MISSING, svc->service_id);

  if (store_revnat) {
    struct kelpie_lb_revnat_key rkey = {.socket_cookie = bpf_get_socket_cookie(ctx),
                                        .backend_address = b->address,
                                        .backend_port = b->port};
    struct kelpie_lb_revnat_value rval = {.service_address = key.address, .service_port = key.port};
    if (bpf_map_update_elem(&lb_revnat, &rkey, &rval, BPF_ANY) != 0) count(KELPIE_LB_REVNAT_UPDATE_FAILED);
  }
  if (v6)
    ctx->user_ip6[3] = b->address; /* stays ::ffff:backend */
  else
    ctx->user_ip4 = b->address;
  ctx->user_port = b->port;
  count(KELPIE_LB_TRANSLATED);
  count_service(svc->service_id, 1);
  return 1;
}

/* recvmsg/getpeername: show the service address for a translated peer. */
static __always_inline void reverse(struct bpf_sock_addr* ctx, int v6) {
  __u32 peer = v6 ? mapped_ip4(ctx) : ctx->user_ip4;
  if (v6 && peer == 0) {
    count(KELPIE_LB_SKIP_NATIVE_IPV6);
    return;
  }
  struct kelpie_lb_revnat_key rkey = {.socket_cookie = bpf_get_socket_cookie(ctx),
                                      .backend_address = peer,
                                      .backend_port = (__u16)ctx->user_port};
  struct kelpie_lb_revnat_value* r = bpf_map_lookup_elem(&lb_revnat, &rkey);
  if (!r) {
    count(KELPIE_LB_SKIP_NO_REVNAT);
    return;
  }
  if (v6)
    ctx->user_ip6[3] = r->service_address;
  else
    ctx->user_ip4 = r->service_address;
  ctx->user_port = r->service_port;
  count(KELPIE_LB_REVNAT_APPLIED);
}

SEC("cgroup/connect4")
int kelpie_connect4(struct bpf_sock_addr* ctx) {
  return translate(ctx, ctx->protocol == KELPIE_IPPROTO_UDP || tcp_revnat, 0);
}

SEC("cgroup/sendmsg4")
int kelpie_sendmsg4(struct bpf_sock_addr* ctx) { return translate(ctx, 1, 0); }

SEC("cgroup/recvmsg4")
int kelpie_recvmsg4(struct bpf_sock_addr* ctx) {
  reverse(ctx, 0);
  return 1; /* recvmsg hooks must not reject */
}

SEC("cgroup/getpeername4")
int kelpie_getpeername4(struct bpf_sock_addr* ctx) {
  reverse(ctx, 0);
  return 1;
}

/* Dual-stack (AF_INET6) sockets reaching IPv4 services through IPv4-mapped
 * addresses: the kernel runs only the v6 hooks for them. Native IPv6
 * destinations pass untouched (no IPv6 services yet). */
SEC("cgroup/connect6")
int kelpie_connect6(struct bpf_sock_addr* ctx) {
  return translate(ctx, ctx->protocol == KELPIE_IPPROTO_UDP || tcp_revnat, 1);
}

SEC("cgroup/sendmsg6")
int kelpie_sendmsg6(struct bpf_sock_addr* ctx) { return translate(ctx, 1, 1); }

SEC("cgroup/recvmsg6")
int kelpie_recvmsg6(struct bpf_sock_addr* ctx) {
  reverse(ctx, 1);
  return 1;
}

SEC("cgroup/getpeername6")
int kelpie_getpeername6(struct bpf_sock_addr* ctx) {
  reverse(ctx, 1);
  return 1;
}

/* A closing socket's reverse entry goes with it, so the LRU holds live
 * sockets only (long-lived connections keep their getpeername translation).
 * Unconnected UDP sockets' entries (several destinations) age out of the
 * LRU instead. */
SEC("cgroup/sock_release")
int kelpie_sock_release(struct bpf_sock* sk) {
  /* Every field read once, up front, at a constant offset: the verifier
   * rejects context accesses through a computed pointer. */
  __u32 family = sk->family;
  __u32 dst4 = sk->dst_ip4;
  __u32 dst6_0 = sk->dst_ip6[0];
  __u32 dst6_1 = sk->dst_ip6[1];
  __u32 dst6_2 = sk->dst_ip6[2];
  __u32 dst6_3 = sk->dst_ip6[3];
  __u16 dport = (__u16)sk->dst_port;
  asm volatile("" ::: "memory");
  __u32 peer = 0;
  if (family == 2 /* AF_INET */) {
    peer = dst4;
  } else if (family == 10 /* AF_INET6 */ && dst6_0 == 0 && dst6_1 == 0 && dst6_2 == bpf_htonl(0xffff)) {
    peer = dst6_3;
  }
  if (peer == 0) return 1;
  struct kelpie_lb_revnat_key rkey = {.socket_cookie = bpf_get_socket_cookie(sk),
                                      .backend_address = peer,
                                      .backend_port = dport};
  if (bpf_map_delete_elem(&lb_revnat, &rkey) == 0) count(KELPIE_LB_REVNAT_RELEASED);
  return 1;
}
