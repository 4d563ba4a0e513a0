/* ABI of bpf/process.bpf.c and bpf/syscalls.bpf.c, the runtime security
 * sensor: one fixed-size record per kernel event, decoded in user space by
 * dataplane/detect_event_decoder. */
#pragma once

#include "kelpie/types.h"

#define KELPIE_DETECT_COMM_LEN 16
#define KELPIE_DETECT_PATH_LEN 256
#define KELPIE_DETECT_ARGS_LEN 256
#define KELPIE_DETECT_EXE_LEN 128

/* What happened; several syscalls share a kind (openat/openat2 -> OPEN). */
enum kelpie_detect_kind {
  KELPIE_DETECT_EXEC = 0,
  KELPIE_DETECT_FORK = 1,
  KELPIE_DETECT_EXIT = 2,
  KELPIE_DETECT_OPEN = 3,
  KELPIE_DETECT_CONNECT = 4,
  KELPIE_DETECT_SETUID = 5,
  KELPIE_DETECT_SETGID = 6,
  KELPIE_DETECT_PTRACE = 7,
  KELPIE_DETECT_MOUNT = 8,
  KELPIE_DETECT_UNSHARE = 9,
  KELPIE_DETECT_SETNS = 10,
  KELPIE_DETECT_MEMFD_CREATE = 11,
  KELPIE_DETECT_INIT_MODULE = 12,
  KELPIE_DETECT_BPF = 13,
  KELPIE_DETECT_CHMOD = 14,
  KELPIE_DETECT_KIND_MAX = 15,
};

/* One record in the ring buffer. Strings are NUL terminated; `args` holds
 * the argv of an exec as NUL-separated words, `args_len` bytes of it. */
struct kelpie_detect_event {
  __u32 kind;
  __u32 tgid;
  __u32 pid;
  __u32 ppid;
  __u32 uid;
  __u32 gid;
  __u64 cgroup_id;
  __u64 timestamp_ns;
  __s64 arg0; /* flags / request / target uid / cmd / port */
  __s64 arg1; /* mode / ipv4 address (network order) */
  __s64 ret;  /* child tgid for FORK, exit code for EXIT */
  __u32 args_len;
  __u32 killed; /* 1 when the program sent SIGKILL itself */
  __u32 tty;    /* controlling terminal (major << 20 | index), 0 without one */
  __u32 reserved;
  char comm[KELPIE_DETECT_COMM_LEN];
  char path[KELPIE_DETECT_PATH_LEN];
  char args[KELPIE_DETECT_ARGS_LEN];
};

/* Value of the process table (keyed by tgid): what a later syscall event
 * needs to be attributed without another exec. */
struct kelpie_detect_process {
  __u64 cgroup_id;
  __u32 ppid;
  __u32 uid;
  char exe[KELPIE_DETECT_EXE_LEN];
};

/* Why an invocation produced no record (per-CPU counters). */
enum kelpie_detect_drop_reason {
  KELPIE_DETECT_FILTER_KIND = 0,    /* no loaded rule uses the kind */
  KELPIE_DETECT_FILTER_CGROUP = 1,  /* outside the watched cgroup root */
  KELPIE_DETECT_FILTER_PATH = 2,    /* path outside every rule prefix */
  KELPIE_DETECT_DROP_RINGBUF = 3,   /* ring buffer full: the event is lost */
  KELPIE_DETECT_REASON_MAX = 4,
};

/* Path prefixes the kernel filters opens/execs on (map value). */
#define KELPIE_DETECT_PREFIX_LEN 64
#define KELPIE_DETECT_MAX_PREFIXES 32
struct kelpie_detect_prefix {
  __u32 len; /* 0 terminates the list */
  __u32 kill; /* exec under this prefix is killed in kernel */
  char bytes[KELPIE_DETECT_PREFIX_LEN];
};
