// SPDX-License-Identifier: GPL-2.0
/*
 * A BTF-enabled tracepoint: its attach target (btf_trace_sched_process_exec)
 * is a kernel BTF id, which bpfcored resolves from its cache instead of
 * letting libbpf parse kernel BTF.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

u64 execs;

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (p->pid == old_pid)
		__sync_fetch_and_add(&execs, 1);
	return 0;
}
