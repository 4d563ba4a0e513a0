// SPDX-License-Identifier: GPL-2.0
/* Feature probes: one tiny program of every type Kelpie uses, loaded one at
 * a time by `kelpie check`, plus a ring-buffer round trip. */
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

#include "kelpie/probe_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* Set before load: the process whose trigger syscall is reported, and a
 * value echoed back so the reader knows the event is its own. */
const volatile __u32 probe_tgid = 0;
const volatile __u64 probe_cookie = 0;
const volatile __s64 probe_syscall_nr = 0;

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 4096);
} probe_events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, KELPIE_PROBE_SKIP_MAX);
  __type(key, __u32);
  __type(value, __u64);
} probe_skips SEC(".maps");

/* Keeps struct kelpie_probe_event in the object's BTF for the ABI test. */
struct kelpie_probe_event probe_event_layout SEC(".bss");

static __always_inline void count_skip(__u32 reason) {
  __u64* n = bpf_map_lookup_elem(&probe_skips, &reason);
  if (n) *n += 1;
}

/* raw_tracepoint/sys_enter needs no tracefs: args[1] is the syscall number. */
SEC("raw_tracepoint/sys_enter")
int probe_ringbuf(struct bpf_raw_tracepoint_args* ctx) {
  __u64 id = bpf_get_current_pid_tgid();
  if ((__u32)(id >> 32) != probe_tgid) {
    count_skip(KELPIE_PROBE_SKIP_OTHER_PROCESS);
    return 0;
  }
  if ((__s64)ctx->args[1] != probe_syscall_nr) {
    count_skip(KELPIE_PROBE_SKIP_OTHER_SYSCALL);
    return 0;
  }
  struct kelpie_probe_event* e = bpf_ringbuf_reserve(&probe_events, sizeof(*e), 0);
  if (!e) {
    count_skip(KELPIE_PROBE_SKIP_RINGBUF_FULL);
    return 0;
  }
  e->tgid = (__u32)(id >> 32);
  e->pid = (__u32)id;
  e->cookie = probe_cookie;
  e->timestamp_ns = bpf_ktime_get_ns();
  e->syscall_nr = (__s64)ctx->args[1];
  bpf_get_current_comm(e->comm, sizeof(e->comm));
  bpf_ringbuf_submit(e, 0);
  return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int probe_tracepoint(void* ctx) { return 0; }

SEC("cgroup/connect4")
int probe_connect4(struct bpf_sock_addr* ctx) { return 1; }

SEC("cgroup_skb/egress")
int probe_cgroup_skb(struct __sk_buff* skb) { return 1; }

SEC("tc")
int probe_sched_cls(struct __sk_buff* skb) { return 0; /* TC_ACT_OK */ }
