/* Fixed-width types for the ABI shared by eBPF programs and C++: in BPF
 * code vmlinux.h provides them, in user space <linux/types.h>. */
#pragma once

#ifdef __bpf__
/* vmlinux.h (included first by every *.bpf.c) defines __u8 ... __u64. */
#else
#include <linux/types.h>
#endif
