// SPDX-License-Identifier: GPL-2.0
/* Process lifecycle for the runtime security sensor: exec, fork and exit
 * from raw tracepoints (no tracefs needed), and a process table keyed by
 * tgid that inherits the parent's cgroup and remembers the executable. */
#include "detect_common.bpf.h"

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __type(value, struct kelpie_detect_process);
} processes SEC(".maps");

/* sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm) */
SEC("raw_tracepoint/sched_process_exec")
int detect_exec(struct bpf_raw_tracepoint_args* ctx) {
  struct task_struct* task = (struct task_struct*)ctx->args[0];
  struct linux_binprm* bprm = (struct linux_binprm*)ctx->args[2];
  __u32 tgid = BPF_CORE_READ(task, tgid);

  /* The table is kept whatever the filters say, so ancestry stays whole. */
  struct kelpie_detect_process proc = {};
  proc.cgroup_id = bpf_get_current_cgroup_id();
  proc.ppid = BPF_CORE_READ(task, real_parent, tgid);
  proc.uid = (__u32)bpf_get_current_uid_gid();
  const char* filename = BPF_CORE_READ(bprm, filename);
  bpf_probe_read_kernel_str(proc.exe, sizeof(proc.exe), filename);
  bpf_map_update_elem(&processes, &tgid, &proc, BPF_ANY);

  if (!wanted(KELPIE_DETECT_EXEC)) return 0;
  struct kelpie_detect_event* e = begin(KELPIE_DETECT_EXEC);
  if (!e) return 0;
  bpf_probe_read_kernel_str(e->path, sizeof(e->path), filename);
  /* execveat(memfd, "", AT_EMPTY_PATH) names the file /dev/fd/N; the
   * dentry says what it is ("memfd:NAME"), reported as "/memfd:NAME". */
  char dname[8] = {};
  const unsigned char* dn = BPF_CORE_READ(bprm, file, f_path.dentry, d_name.name);
  bpf_probe_read_kernel(dname, 6, dn);
  if (dname[0] == 'm' && dname[1] == 'e' && dname[2] == 'm' && dname[3] == 'f' && dname[4] == 'd' &&
      dname[5] == ':') {
    e->path[0] = '/';
    bpf_probe_read_kernel_str(e->path + 1, sizeof(e->path) - 1, dn);
  }

  /* argv of the new image: the NUL-separated words between arg_start and
   * arg_end of the new mm, bounded by the record. */
  unsigned long start = BPF_CORE_READ(task, mm, arg_start);
  unsigned long end = BPF_CORE_READ(task, mm, arg_end);
  unsigned long len = end > start ? end - start : 0;
  if (len > KELPIE_DETECT_ARGS_LEN - 1) len = KELPIE_DETECT_ARGS_LEN - 1;
  len &= KELPIE_DETECT_ARGS_LEN - 1;
  if (bpf_probe_read_user(e->args, len, (const void*)start) == 0) e->args_len = (__u32)len;

  int match = path_prefix(e->path);
  if ((path_filter_mask & (1u << KELPIE_DETECT_EXEC)) && !match) {
    count(KELPIE_DETECT_FILTER_PATH);
    return 0;
  }
  if (match) {
    __u32 index = (__u32)(match - 1);
    struct kelpie_detect_prefix* p = bpf_map_lookup_elem(&prefixes, &index);
    if (p && p->kill) {
      /* Decided entirely in kernel: the new image never runs user code. */
      bpf_send_signal(9 /* SIGKILL */);
      e->killed = 1;
    }
  }
  if (bpf_ringbuf_output(&events, e, sizeof(*e), 0) != 0) count(KELPIE_DETECT_DROP_RINGBUF);
  return 0;
}

/* sched_process_fork(struct task_struct *parent, struct task_struct *child) */
SEC("raw_tracepoint/sched_process_fork")
int detect_fork(struct bpf_raw_tracepoint_args* ctx) {
  struct task_struct* parent = (struct task_struct*)ctx->args[0];
  struct task_struct* child = (struct task_struct*)ctx->args[1];
  __u32 child_pid = BPF_CORE_READ(child, pid);
  __u32 child_tgid = BPF_CORE_READ(child, tgid);
  if (child_pid != child_tgid) return 0; /* a new thread, not a process */
  __u32 parent_tgid = BPF_CORE_READ(parent, tgid);

  struct kelpie_detect_process proc = {};
  struct kelpie_detect_process* from = bpf_map_lookup_elem(&processes, &parent_tgid);
  if (from) {
    proc = *from;
  } else {
    proc.uid = (__u32)bpf_get_current_uid_gid();
    BPF_CORE_READ_STR_INTO(&proc.exe, parent, comm);
  }
  proc.cgroup_id = bpf_get_current_cgroup_id();
  proc.ppid = parent_tgid;
  bpf_map_update_elem(&processes, &child_tgid, &proc, BPF_ANY);

  if (!wanted(KELPIE_DETECT_FORK)) return 0;
  struct kelpie_detect_event* e = begin(KELPIE_DETECT_FORK);
  if (!e) return 0;
  e->ret = child_tgid;
  __builtin_memcpy(e->path, proc.exe, sizeof(proc.exe));
  if (bpf_ringbuf_output(&events, e, sizeof(*e), 0) != 0) count(KELPIE_DETECT_DROP_RINGBUF);
  return 0;
}

/* sched_process_exit(struct task_struct *p) */
SEC("raw_tracepoint/sched_process_exit")
int detect_exit(struct bpf_raw_tracepoint_args* ctx) {
  struct task_struct* task = (struct task_struct*)ctx->args[0];
  __u32 pid = BPF_CORE_READ(task, pid);
  __u32 tgid = BPF_CORE_READ(task, tgid);
  if (pid != tgid) return 0; /* a thread; the process lives on */
  bpf_map_delete_elem(&processes, &tgid);

  if (!wanted(KELPIE_DETECT_EXIT)) return 0;
  struct kelpie_detect_event* e = begin(KELPIE_DETECT_EXIT);
  if (!e) return 0;
  e->ret = BPF_CORE_READ(task, exit_code);
  if (bpf_ringbuf_output(&events, e, sizeof(*e), 0) != 0) count(KELPIE_DETECT_DROP_RINGBUF);
  return 0;
}
