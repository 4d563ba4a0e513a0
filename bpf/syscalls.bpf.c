// SPDX-License-Identifier: GPL-2.0
/* Security-relevant syscalls for the runtime security sensor, from the
 * raw_syscalls sys_enter raw tracepoint (no tracefs, one attachment for all
 * syscalls). Syscall numbers are x86_64's; arguments come from the user
 * registers the tracepoint passes. */
#include "detect_common.bpf.h"

#include <bpf/bpf_tracing.h>

#define NR_CHMOD 90
#define NR_CONNECT 42
#define NR_PTRACE 101
#define NR_SETUID 105
#define NR_SETGID 106
#define NR_SETRESUID 117
#define NR_MOUNT 165
#define NR_INIT_MODULE 175
#define NR_OPENAT 257
#define NR_FCHMODAT 268
#define NR_UNSHARE 272
#define NR_SETNS 308
#define NR_FINIT_MODULE 313
#define NR_MEMFD_CREATE 319
#define NR_BPF 321
#define NR_OPENAT2 437
#define NR_FCHMODAT2 452

static __always_inline int kind_of(long nr) {
  switch (nr) {
    case NR_OPENAT:
    case NR_OPENAT2: return KELPIE_DETECT_OPEN;
    case NR_CONNECT: return KELPIE_DETECT_CONNECT;
    case NR_SETUID:
    case NR_SETRESUID: return KELPIE_DETECT_SETUID;
    case NR_SETGID: return KELPIE_DETECT_SETGID;
    case NR_PTRACE: return KELPIE_DETECT_PTRACE;
    case NR_MOUNT: return KELPIE_DETECT_MOUNT;
    case NR_UNSHARE: return KELPIE_DETECT_UNSHARE;
    case NR_SETNS: return KELPIE_DETECT_SETNS;
    case NR_MEMFD_CREATE: return KELPIE_DETECT_MEMFD_CREATE;
    case NR_INIT_MODULE:
    case NR_FINIT_MODULE: return KELPIE_DETECT_INIT_MODULE;
    case NR_BPF: return KELPIE_DETECT_BPF;
    case NR_CHMOD:
    case NR_FCHMODAT:
    case NR_FCHMODAT2: return KELPIE_DETECT_CHMOD;
    default: return -1;
  }
}

SEC("raw_tracepoint/sys_enter")
int detect_sys_enter(struct bpf_raw_tracepoint_args* ctx) {
  long nr = (long)ctx->args[1];
  int kind = kind_of(nr);
  if (kind < 0) return 0;
  if (!wanted((__u32)kind)) return 0;
  struct pt_regs* regs = (struct pt_regs*)ctx->args[0];
  unsigned long a0 = BPF_CORE_READ(regs, di);
  unsigned long a1 = BPF_CORE_READ(regs, si);
  unsigned long a2 = BPF_CORE_READ(regs, dx);
  struct kelpie_detect_event* e = begin((__u32)kind);
  if (!e) return 0;

  switch (kind) {
    case KELPIE_DETECT_OPEN:
      bpf_probe_read_user_str(e->path, sizeof(e->path), (const void*)a1);
      if (nr == NR_OPENAT2) {
        struct open_how how = {};
        bpf_probe_read_user(&how, sizeof(how), (const void*)a2);
        e->arg0 = (__s64)how.flags;
        e->arg1 = (__s64)how.mode;
      } else {
        e->arg0 = (__s64)a2;
        e->arg1 = (__s64)BPF_CORE_READ(regs, r10);
      }
      break;
    case KELPIE_DETECT_CONNECT: {
      struct sockaddr_in sin = {};
      if (bpf_probe_read_user(&sin, sizeof(sin), (const void*)a1) != 0) return 0;
      if (sin.sin_family != 2 /* AF_INET */) return 0; /* IPv6/unix: not reported yet */
      e->arg0 = __builtin_bswap16(sin.sin_port);
      e->arg1 = sin.sin_addr.s_addr;
      break;
    }
    case KELPIE_DETECT_SETUID:
    case KELPIE_DETECT_SETGID:
      e->arg0 = (__s64)(long)(int)a0;
      break;
    case KELPIE_DETECT_PTRACE:
      e->arg0 = (__s64)a0; /* request */
      e->arg1 = (__s64)a1; /* target pid */
      break;
    case KELPIE_DETECT_MOUNT:
      bpf_probe_read_user_str(e->path, sizeof(e->path), (const void*)a1); /* target */
      bpf_probe_read_user_str(e->args, 128, (const void*)a0);            /* source */
      bpf_probe_read_user_str(e->args + 128, 64, (const void*)a2);       /* fstype */
      e->arg0 = (__s64)BPF_CORE_READ(regs, r10);
      break;
    case KELPIE_DETECT_UNSHARE:
      e->arg0 = (__s64)a0;
      break;
    case KELPIE_DETECT_SETNS:
      e->arg0 = (__s64)a1;
      break;
    case KELPIE_DETECT_MEMFD_CREATE:
      bpf_probe_read_user_str(e->path, sizeof(e->path), (const void*)a0);
      e->arg0 = (__s64)a1;
      break;
    case KELPIE_DETECT_INIT_MODULE:
      if (nr == NR_FINIT_MODULE) e->arg0 = (__s64)a0; /* fd */
      break;
    case KELPIE_DETECT_BPF:
      e->arg0 = (__s64)a0; /* command */
      break;
    case KELPIE_DETECT_CHMOD:
      if (nr == NR_CHMOD) {
        bpf_probe_read_user_str(e->path, sizeof(e->path), (const void*)a0);
        e->arg1 = (__s64)a1;
      } else {
        bpf_probe_read_user_str(e->path, sizeof(e->path), (const void*)a1);
        e->arg1 = (__s64)a2;
      }
      /* Only setuid/setgid bits are worth a record. */
      if (!(e->arg1 & 06000)) return 0;
      break;
  }
  submit(e);
  return 0;
}
