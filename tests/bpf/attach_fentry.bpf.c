// SPDX-License-Identifier: GPL-2.0
/* Counts one process's unlink calls through fentry and fexit; some kernels refuse to load them. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

const volatile u32 target_tgid;

u64 fentry_hits;
u64 fexit_hits;

SEC("fentry/do_unlinkat")
int BPF_PROG(fentry_unlinkat)
{
	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		__sync_fetch_and_add(&fentry_hits, 1);
	return 0;
}

SEC("fexit/do_unlinkat")
int BPF_PROG(fexit_unlinkat)
{
	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		__sync_fetch_and_add(&fexit_hits, 1);
	return 0;
}
