// SPDX-License-Identifier: GPL-2.0
/*
 * Counts execve() calls per process. The task_struct reads are CO-RE
 * relocated, so this object is the planner's main field-offset case; two
 * programs let a client load only one of them.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);   /* tgid */
	__type(value, u64); /* execve() calls */
} exec_count SEC(".maps");

/* Parent of the last process that called execve(), for a quick look. */
u32 last_ppid;

SEC("tracepoint/syscalls/sys_enter_execve")
int handle_exec(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	u32 tgid = BPF_CORE_READ(task, tgid);
	u32 pid = BPF_CORE_READ(task, pid);
	u64 one = 1, *count;

	/* Count the process, not each of its threads. */
	if (pid != tgid)
		return 0;

	last_ppid = BPF_CORE_READ(task, real_parent, tgid);

	count = bpf_map_lookup_elem(&exec_count, &tgid);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&exec_count, &tgid, &one, BPF_NOEXIST);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int handle_exit(struct trace_event_raw_sched_process_template *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32;

	/* Only when the whole process goes, i.e. its leader exits. */
	if ((u32)id != tgid)
		return 0;
	bpf_map_delete_elem(&exec_count, &tgid);
	return 0;
}
