// SPDX-License-Identifier: GPL-2.0
/*
 * A getpid() counter configured entirely through globals: .rodata knobs of
 * several types (set before load), a .data and a .bss counter, and a small
 * array whose size a client may override. Every global is used, so none is
 * optimized away.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum count_mode {
	COUNT_ALL = 0,
	COUNT_OVER_THRESHOLD = 1,
	COUNT_NONE = 2,
};

const volatile __u32 target_pid = 0;       /* 0: every process */
const volatile __s64 threshold = -1;       /* hits after which slot 1 records the pid */
const volatile bool enabled = false;
const volatile char comm_filter[16] = "";  /* "": every command */
const volatile enum count_mode mode = COUNT_ALL;

__u64 data_counter = 7; /* .data: starts from a non-zero value */
__u64 hits;             /* .bss */

/* 0: calls counted, 1: pid of the last call over threshold, 2: last pid seen. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} settings SEC(".maps");

static __always_inline bool comm_matches(void)
{
	char comm[16];

	if (!comm_filter[0])
		return true;
	bpf_get_current_comm(comm, sizeof(comm));
	for (int i = 0; i < (int)sizeof(comm); i++) {
		if (comm[i] != comm_filter[i])
			return false;
		if (!comm[i])
			break;
	}
	return true;
}

static __always_inline void slot_set(__u32 key, __u64 value)
{
	__u64 *slot = bpf_map_lookup_elem(&settings, &key);

	if (slot)
		*slot = value;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_getpid(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 n, *calls;
	__u32 key = 0;

	if (!enabled || mode == COUNT_NONE)
		return 0;
	if (target_pid && pid != target_pid)
		return 0;
	if (!comm_matches())
		return 0;

	n = __sync_fetch_and_add(&hits, 1) + 1;
	__sync_fetch_and_add(&data_counter, 1);
	slot_set(2, pid);

	if (threshold >= 0 && n > (__u64)threshold)
		slot_set(1, pid);
	else if (mode == COUNT_OVER_THRESHOLD)
		return 0;

	calls = bpf_map_lookup_elem(&settings, &key);
	if (calls)
		__sync_fetch_and_add(calls, 1);
	return 0;
}
