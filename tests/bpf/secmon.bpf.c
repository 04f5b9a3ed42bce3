// SPDX-License-Identifier: GPL-2.0
/*
 * A real-world-sized object for the benchmark and the differential test, in
 * the shape of a security audit agent: process lifecycle from BTF
 * tracepoints, a watch list of syscalls from their tracepoints, each event
 * with the caller's credentials, capabilities, namespaces, cgroup and
 * executable. CO-RE as such agents use it: deep pointer chains, fields that
 * moved between kernels behind flavors (task_struct's state, the old
 * capability layout), enum values, type sizes and existence checks.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* Before 5.14 the state field was 'state'; flavors let one object read both. */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

/* Before 6.3 capabilities were two 32-bit words. */
struct kernel_cap_struct___pre63 {
	u32 cap[2];
} __attribute__((preserve_access_index));

struct cred___pre63 {
	struct kernel_cap_struct___pre63 cap_effective;
	struct kernel_cap_struct___pre63 cap_permitted;
} __attribute__((preserve_access_index));

struct who {
	u32 pid, tgid, ppid, uid, gid, euid, egid, loginuid, sessionid;
	u64 cap_effective, cap_permitted;
	u32 pid_ns, mnt_ns, net_ns, uts_ns, user_ns;
	u64 cgroup_id, start_time;
	u32 flags, state;
	char comm[16];
	char exe[64];
};

struct event {
	u32 kind, nr;
	u64 args[4];
	struct who who;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 512 * 1024);
} audit SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, u32);
	__type(value, struct who);
} processes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct event);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512);
	__type(key, u32);
	__type(value, u64);
} syscall_counts SEC(".maps");

const volatile u32 self_tgid;
const volatile bool with_exe = true;

static __always_inline u32 task_state(const struct task_struct *t)
{
	struct task_struct___pre514 *old = (void *)t;

	if (bpf_core_field_exists(old->state))
		return BPF_CORE_READ(old, state);
	return BPF_CORE_READ(t, __state);
}

static __always_inline void caps(struct who *w, const struct cred *cred)
{
	if (bpf_core_type_exists(struct kernel_cap_struct___pre63)) {
		const struct cred___pre63 *old = (void *)cred;

		w->cap_effective = BPF_CORE_READ(old, cap_effective.cap[0]) |
				   (u64)BPF_CORE_READ(old, cap_effective.cap[1]) << 32;
		w->cap_permitted = BPF_CORE_READ(old, cap_permitted.cap[0]) |
				   (u64)BPF_CORE_READ(old, cap_permitted.cap[1]) << 32;
	} else {
		w->cap_effective = BPF_CORE_READ(cred, cap_effective.val);
		w->cap_permitted = BPF_CORE_READ(cred, cap_permitted.val);
	}
}

static __always_inline void describe(struct who *w, const struct task_struct *t)
{
	const struct cred *cred = BPF_CORE_READ(t, cred);
	const unsigned char *name;

	w->pid = BPF_CORE_READ(t, pid);
	w->tgid = BPF_CORE_READ(t, tgid);
	w->ppid = BPF_CORE_READ(t, real_parent, tgid);
	w->uid = BPF_CORE_READ(cred, uid.val);
	w->gid = BPF_CORE_READ(cred, gid.val);
	w->euid = BPF_CORE_READ(cred, euid.val);
	w->egid = BPF_CORE_READ(cred, egid.val);
	w->user_ns = BPF_CORE_READ(cred, user_ns, ns.inum);
	caps(w, cred);
	if (bpf_core_field_exists(t->loginuid)) {
		w->loginuid = BPF_CORE_READ(t, loginuid.val);
		w->sessionid = BPF_CORE_READ(t, sessionid);
	}
	w->pid_ns = BPF_CORE_READ(t, nsproxy, pid_ns_for_children, ns.inum);
	w->mnt_ns = BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum);
	w->net_ns = BPF_CORE_READ(t, nsproxy, net_ns, ns.inum);
	w->uts_ns = BPF_CORE_READ(t, nsproxy, uts_ns, ns.inum);
	w->cgroup_id = BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
	w->start_time = BPF_CORE_READ(t, start_boottime);
	w->flags = BPF_CORE_READ(t, flags);
	w->state = task_state(t);
	BPF_CORE_READ_STR_INTO(&w->comm, t, comm);
	if (with_exe) {
		name = BPF_CORE_READ(t, mm, exe_file, f_path.dentry, d_name.name);
		bpf_probe_read_kernel_str(w->exe, sizeof(w->exe), (const void *)name);
	}
}

static __always_inline struct event *event_new(u32 kind, u32 nr)
{
	u32 zero = 0;
	struct event *e = bpf_map_lookup_elem(&scratch, &zero);

	if (!e)
		return NULL;
	e->kind = kind;
	e->nr = nr;
	return e;
}

static __always_inline void event_send(struct event *e)
{
	bpf_ringbuf_output(&audit, e, sizeof(*e), 0);
}

/* Process lifecycle, with BTF arguments. */

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct event *e = event_new(1, 0);

	if (!e)
		return 0;
	describe(&e->who, p);
	bpf_probe_read_kernel_str(e->who.exe, sizeof(e->who.exe), BPF_CORE_READ(bprm, filename));
	e->args[0] = old_pid;
	e->args[1] = BPF_CORE_READ(bprm, argc);
	e->args[2] = BPF_CORE_READ(bprm, envc);
	e->args[3] = BPF_CORE_READ(p, mm, arg_end) - BPF_CORE_READ(p, mm, arg_start);
	bpf_map_update_elem(&processes, &e->who.tgid, &e->who, BPF_ANY);
	event_send(e);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	struct event *e = event_new(2, 0);

	if (!e)
		return 0;
	describe(&e->who, child);
	e->args[0] = BPF_CORE_READ(parent, tgid);
	e->args[1] = BPF_CORE_READ(child, exit_signal);
	bpf_map_update_elem(&processes, &e->who.tgid, &e->who, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p, bool group_dead)
{
	u32 tgid = BPF_CORE_READ(p, tgid);
	struct event *e;

	if (!group_dead)
		return 0;
	e = event_new(3, 0);
	if (!e)
		return 0;
	describe(&e->who, p);
	e->args[0] = BPF_CORE_READ(p, exit_code);
	e->args[1] = BPF_CORE_READ(p, signal, nr_threads);
	e->args[2] = BPF_CORE_READ(p, utime) + BPF_CORE_READ(p, stime);
	e->args[3] = BPF_CORE_READ(p, min_flt) + BPF_CORE_READ(p, maj_flt);
	event_send(e);
	bpf_map_delete_elem(&processes, &tgid);
	return 0;
}

SEC("tp_btf/task_rename")
int BPF_PROG(on_rename, struct task_struct *task, const char *comm)
{
	struct event *e = event_new(4, 0);

	if (!e)
		return 0;
	describe(&e->who, task);
	bpf_probe_read_kernel_str(e->who.exe, sizeof(e->who.exe), comm);
	event_send(e);
	return 0;
}

SEC("tp_btf/task_newtask")
int BPF_PROG(on_newtask, struct task_struct *task, u64 clone_flags)
{
	struct event *e;

	if (!(clone_flags & (0x00020000 | 0x20000000 | 0x40000000))) /* CLONE_NEWNS, NEWPID, NEWNET */
		return 0;
	e = event_new(5, 0);
	if (!e)
		return 0;
	describe(&e->who, task);
	e->args[0] = clone_flags;
	event_send(e);
	return 0;
}

SEC("tp_btf/signal_generate")
int BPF_PROG(on_signal, int sig, struct kernel_siginfo *info, struct task_struct *task, int group, int result)
{
	struct event *e;

	if (sig != 9 && sig != 19) /* SIGKILL, SIGSTOP */
		return 0;
	e = event_new(6, sig);
	if (!e)
		return 0;
	describe(&e->who, (struct task_struct *)bpf_get_current_task());
	e->args[0] = BPF_CORE_READ(task, tgid);
	e->args[1] = BPF_CORE_READ(info, si_code);
	e->args[2] = result;
	event_send(e);
	return 0;
}

/* The classic exec tracepoint: its record's layout relocated, the file name through __data_loc. */
SEC("tracepoint/sched/sched_process_exec")
int on_exec_tp(struct trace_event_raw_sched_process_exec *ctx)
{
	struct event *e = event_new(7, 0);
	u32 loc;

	if (!e)
		return 0;
	describe(&e->who, (struct task_struct *)bpf_get_current_task());
	loc = BPF_CORE_READ(ctx, __data_loc_filename);
	bpf_probe_read_kernel_str(e->who.exe, sizeof(e->who.exe), (void *)ctx + (loc & 0xffff));
	e->args[0] = BPF_CORE_READ(ctx, old_pid);
	e->args[1] = bpf_core_type_size(struct linux_binprm);
	e->args[2] = bpf_core_field_size(struct task_struct, comm);
	e->args[3] = bpf_core_type_matches(struct trace_event_raw_sched_process_exec);
	event_send(e);
	return 0;
}

/* Every syscall, counted; the watched ones below each get a program. */
SEC("raw_tp/sys_enter")
int BPF_PROG(count_syscalls, struct pt_regs *regs, long id)
{
	u32 nr = id & 511;
	u64 *v = bpf_map_lookup_elem(&syscall_counts, &nr);

	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

static __always_inline int watched(struct trace_event_raw_sys_enter *ctx, u32 kind)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct event *e;

	if (self_tgid && (u32)BPF_CORE_READ(t, tgid) == self_tgid)
		return 0;
	e = event_new(kind, BPF_CORE_READ(ctx, id));
	if (!e)
		return 0;
	describe(&e->who, t);
	e->args[0] = BPF_CORE_READ(ctx, args[0]);
	e->args[1] = BPF_CORE_READ(ctx, args[1]);
	e->args[2] = BPF_CORE_READ(ctx, args[2]);
	e->args[3] = BPF_CORE_READ(ctx, args[3]);
	event_send(e);
	return 0;
}

#define WATCH(name, kind)                                                   \
	SEC("tracepoint/syscalls/sys_enter_" #name)                         \
	int watch_##name(struct trace_event_raw_sys_enter *ctx)             \
	{                                                                   \
		return watched(ctx, kind);                                  \
	}

WATCH(execve, 10) WATCH(execveat, 11) WATCH(ptrace, 12) WATCH(setuid, 13) WATCH(setgid, 14)
WATCH(setresuid, 15) WATCH(setresgid, 16) WATCH(capset, 17) WATCH(unshare, 18) WATCH(setns, 19)
WATCH(mount, 20) WATCH(umount2, 21) WATCH(pivot_root, 22) WATCH(chroot, 23) WATCH(init_module, 24)
WATCH(finit_module, 25) WATCH(delete_module, 26) WATCH(bpf, 27) WATCH(perf_event_open, 28)
WATCH(memfd_create, 29) WATCH(kill, 30) WATCH(tgkill, 31) WATCH(connect, 32) WATCH(bind, 33)
WATCH(listen, 34) WATCH(chmod, 35) WATCH(fchmodat, 36) WATCH(chown, 37) WATCH(fchownat, 38)
WATCH(unlinkat, 39) WATCH(renameat2, 40) WATCH(openat, 41) WATCH(kexec_load, 42)
