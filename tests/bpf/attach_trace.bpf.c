// SPDX-License-Identifier: GPL-2.0
/*
 * Counts one process's getpid() calls three ways, one slot each: through a
 * tracepoint, a raw tracepoint and a BTF tracepoint. The counter map is
 * pinned by name so the test can reach it again after closing the object,
 * as the daemon does after a restart.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* Set before load: whose calls count, and getpid's number on this architecture. */
const volatile u32 target_tgid;
const volatile long getpid_nr = -1;

enum { SLOT_TRACEPOINT, SLOT_RAW_TP, SLOT_TP_BTF, SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, u32);
	__type(value, u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} attach_trace_counts SEC(".maps");

static __always_inline void count(u32 slot)
{
	u64 *v;

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return;
	v = bpf_map_lookup_elem(&attach_trace_counts, &slot);
	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int tp_getpid(void *ctx)
{
	count(SLOT_TRACEPOINT);
	return 0;
}

SEC("raw_tp/sys_enter")
int raw_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if ((long)ctx->args[1] == getpid_nr)
		count(SLOT_RAW_TP);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(btf_sys_enter, struct pt_regs *regs, long id)
{
	if (id == getpid_nr)
		count(SLOT_TP_BTF);
	return 0;
}
