// SPDX-License-Identifier: GPL-2.0
/*
 * kfuncs (typed kernel symbols of functions): libbpf resolves their BTF ids
 * against kernel BTF, which bpfcored hands it from its cache instead of
 * letting it parse vmlinux. (Typed variables, `extern struct rq runqueues
 * __ksym`, need CONFIG_KALLSYMS_ALL, which this machine's kernel lacks.)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

u64 execs;
pid_t last_tgid;

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec_kfuncs, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct task_struct *held = bpf_task_acquire(p);

	if (!held)
		return 0;
	bpf_rcu_read_lock();
	last_tgid = held->tgid;
	bpf_rcu_read_unlock();
	bpf_task_release(held);
	__sync_fetch_and_add(&execs, 1);
	return 0;
}
