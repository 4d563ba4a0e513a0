/* Shared by process.bpf.c and syscalls.bpf.c: configuration, the ring
 * buffer, per-reason counters, the cgroup and kind filters and the path
 * prefix filter. Each object gets its own instance of these maps. */
#pragma once

#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "kelpie/detect_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* Set before load from the rules and flags (see DetectSensor). */
const volatile __u32 kind_mask = 0xffffffff; /* bit per kelpie_detect_kind */
const volatile __u32 path_filter_mask = 0;   /* kinds whose path must match a prefix */
const volatile __u64 watch_cgroup_id = 0;    /* 0: every cgroup */
const volatile __u32 watch_cgroup_level = 0; /* depth of watch_cgroup_id in the v2 tree */
const volatile __u32 include_host = 1;       /* report processes outside the root too */
const volatile __u32 ignore_tgid = 0;        /* the sensor itself */

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20); /* resized before load */
} events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, KELPIE_DETECT_REASON_MAX);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, KELPIE_DETECT_MAX_PREFIXES);
  __type(key, __u32);
  __type(value, struct kelpie_detect_prefix);
} prefixes SEC(".maps");

/* Scratch record per CPU, filled before the path filter decides. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct kelpie_detect_event);
} scratch SEC(".maps");

/* Keeps the ABI structs in the object's BTF for the layout test. */
struct kelpie_detect_event detect_event_layout SEC(".bss");
struct kelpie_detect_process detect_process_layout SEC(".bss");

static __always_inline void count(__u32 reason) {
  __u64* n = bpf_map_lookup_elem(&counters, &reason);
  if (n) *n += 1;
}

/* Kind filter, then the sensor itself, then the cgroup filter. */
static __always_inline int wanted(__u32 kind) {
  if (!(kind_mask & (1u << kind))) {
    count(KELPIE_DETECT_FILTER_KIND);
    return 0;
  }
  if (ignore_tgid && (__u32)(bpf_get_current_pid_tgid() >> 32) == ignore_tgid) return 0;
  if (watch_cgroup_id) {
    __u64 anc = bpf_get_current_ancestor_cgroup_id(watch_cgroup_level);
    if (anc != watch_cgroup_id && !include_host) {
      count(KELPIE_DETECT_FILTER_CGROUP);
      return 0;
    }
  }
  return 1;
}

static __always_inline struct kelpie_detect_event* begin(__u32 kind) {
  __u32 zero = 0;
  struct kelpie_detect_event* e = bpf_map_lookup_elem(&scratch, &zero);
  if (!e) return 0;
  __u64 id = bpf_get_current_pid_tgid();
  __u64 ug = bpf_get_current_uid_gid();
  struct task_struct* task = (struct task_struct*)bpf_get_current_task();
  e->kind = kind;
  e->tgid = (__u32)(id >> 32);
  e->pid = (__u32)id;
  e->ppid = BPF_CORE_READ(task, real_parent, tgid);
  e->uid = (__u32)ug;
  e->gid = (__u32)(ug >> 32);
  e->cgroup_id = bpf_get_current_cgroup_id();
  e->timestamp_ns = bpf_ktime_get_ns();
  e->arg0 = 0;
  e->arg1 = 0;
  e->ret = 0;
  e->args_len = 0;
  e->killed = 0;
  e->tty = 0;
  struct tty_struct* tty = BPF_CORE_READ(task, signal, tty);
  if (tty) e->tty = ((__u32)BPF_CORE_READ(tty, driver, major) << 20) | (__u32)BPF_CORE_READ(tty, index);
  e->path[0] = 0;
  e->args[0] = 0;
  bpf_get_current_comm(e->comm, sizeof(e->comm));
  return e;
}

struct prefix_ctx {
  const char* path;
  int matched; /* 1 + index of the matching prefix */
};

static long match_prefix(__u32 index, void* data) {
  struct prefix_ctx* c = data;
  struct kelpie_detect_prefix* p = bpf_map_lookup_elem(&prefixes, &index);
  if (!p || p->len == 0) return 1; /* end of the list */
  __u32 len = p->len;
  if (len > KELPIE_DETECT_PREFIX_LEN) return 1;
  for (__u32 i = 0; i < KELPIE_DETECT_PREFIX_LEN; i++) {
    if (i >= len) {
      c->matched = index + 1;
      return 1;
    }
    if (c->path[i] != p->bytes[i]) return 0;
  }
  c->matched = index + 1;
  return 1;
}

/* Index + 1 of the first prefix `path` starts with, 0 when none does. */
static __always_inline int path_prefix(const char* path) {
  struct prefix_ctx c = {.path = path, .matched = 0};
  bpf_loop(KELPIE_DETECT_MAX_PREFIXES, match_prefix, &c, 0);
  return c.matched;
}

/* Copies the scratch record into the ring buffer (or counts the drop). */
static __always_inline void submit(struct kelpie_detect_event* e) {
  if (path_filter_mask & (1u << e->kind)) {
    if (!path_prefix(e->path)) {
      count(KELPIE_DETECT_FILTER_PATH);
      return;
    }
  }
  if (bpf_ringbuf_output(&events, e, sizeof(*e), 0) != 0) count(KELPIE_DETECT_DROP_RINGBUF);
}
