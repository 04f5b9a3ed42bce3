// SPDX-License-Identifier: GPL-2.0
/*
 * A program array that libbpf fills at load (.values): getpid() enters at
 * dispatch, which tail-calls stage_one or stage_two by a .rodata knob.
 * Several programs, so the daemon verifies them side by side; libbpf puts
 * their fds into the array after that, and must find the programs there.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 first_stage = 0;
const volatile __u32 only_tgid = 0; /* 0: every process */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} reached SEC(".maps");

static __always_inline int mark(__u32 stage)
{
	__u64 *n;

	if (only_tgid && bpf_get_current_pid_tgid() >> 32 != only_tgid)
		return 0;
	n = bpf_map_lookup_elem(&reached, &stage);
	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int stage_one(void *ctx)
{
	return mark(0);
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int stage_two(void *ctx)
{
	return mark(1);
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, int(void *));
} stages SEC(".maps") = {
	.values = {
		[0] = (void *)&stage_one,
		[1] = (void *)&stage_two,
	},
};

SEC("tracepoint/syscalls/sys_enter_getpid")
int dispatch(void *ctx)
{
	bpf_tail_call(ctx, &stages, first_stage);
	return 0;
}
