/* ABI of bpf/probe.bpf.c, the feature probes behind `kelpie check`. */
#pragma once

#include "kelpie/types.h"

#define KELPIE_PROBE_COMM_LEN 16

/* Pushed through the probe ring buffer when the configured process makes
 * the trigger syscall. */
struct kelpie_probe_event {
  __u32 tgid;
  __u32 pid;
  __u64 cookie; /* echoes the const volatile `probe_cookie` */
  __u64 timestamp_ns;
  __s64 syscall_nr;
  char comm[KELPIE_PROBE_COMM_LEN];
};

/* Why the ring-buffer probe skipped an invocation (per-CPU counters). */
enum kelpie_probe_skip_reason {
  KELPIE_PROBE_SKIP_OTHER_PROCESS = 0,
  KELPIE_PROBE_SKIP_OTHER_SYSCALL = 1,
  KELPIE_PROBE_SKIP_RINGBUF_FULL = 2,
  KELPIE_PROBE_SKIP_MAX = 3,
};
