// SPDX-License-Identifier: GPL-2.0
/*
 * A real-world-sized object for the planner and the benchmark: 48 programs,
 * each reading a dozen CO-RE relocated fields of task_struct, mm_struct,
 * files, signal, cred and friends, as process monitors do.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct snapshot {
	u32 pid, tgid, ppid, uid, gid;
	u64 start, vm, rss_pages, flags;
	u32 nr_threads, prio;
	int exit_code;
	u32 fds;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct snapshot);
} scratch SEC(".maps");

static __always_inline int snap(u32 salt)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct snapshot *s;
	u32 key = 0;

	s = bpf_map_lookup_elem(&scratch, &key);
	if (!s)
		return 0;
	s->pid = BPF_CORE_READ(task, pid) ^ salt;
	s->tgid = BPF_CORE_READ(task, tgid);
	s->ppid = BPF_CORE_READ(task, real_parent, tgid);
	s->uid = BPF_CORE_READ(task, cred, uid.val);
	s->gid = BPF_CORE_READ(task, cred, gid.val);
	s->start = BPF_CORE_READ(task, start_time);
	s->vm = BPF_CORE_READ(task, mm, total_vm);
	s->rss_pages = BPF_CORE_READ(task, mm, hiwater_rss);
	s->flags = BPF_CORE_READ(task, flags);
	s->nr_threads = BPF_CORE_READ(task, signal, nr_threads);
	s->prio = BPF_CORE_READ(task, prio);
	s->exit_code = BPF_CORE_READ(task, exit_code);
	s->fds = BPF_CORE_READ(task, files, next_fd);
	BPF_CORE_READ_STR_INTO(&s->comm, task, comm);
	if (bpf_core_field_exists(task->numa_faults_locality))
		s->flags |= 1ULL << 63;
	return 0;
}

#define PROG(n)                                                     \
	SEC("tracepoint/syscalls/sys_enter_getpid")                 \
	int snap_##n(void *ctx)                                     \
	{                                                           \
		return snap(n);                                     \
	}

PROG(0) PROG(1) PROG(2) PROG(3) PROG(4) PROG(5) PROG(6) PROG(7)
PROG(8) PROG(9) PROG(10) PROG(11) PROG(12) PROG(13) PROG(14) PROG(15)
PROG(16) PROG(17) PROG(18) PROG(19) PROG(20) PROG(21) PROG(22) PROG(23)
PROG(24) PROG(25) PROG(26) PROG(27) PROG(28) PROG(29) PROG(30) PROG(31)
PROG(32) PROG(33) PROG(34) PROG(35) PROG(36) PROG(37) PROG(38) PROG(39)
PROG(40) PROG(41) PROG(42) PROG(43) PROG(44) PROG(45) PROG(46) PROG(47)
