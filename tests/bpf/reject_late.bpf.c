// SPDX-License-Identifier: GPL-2.0
/*
 * Four programs, the verifier refuses the second: a hash map lookup is
 * dereferenced unchecked ("R0 invalid mem access 'map_value_or_null'").
 * The daemon verifies an object's programs side by side; the rejection must
 * still name bad_second, with its log, and leave nothing loaded.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

static __always_inline int count(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 *n = bpf_map_lookup_elem(&calls, &tgid);

	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int good_first(void *ctx)
{
	return count();
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int bad_second(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 *n = bpf_map_lookup_elem(&calls, &tgid);

	*n += 1; /* deliberately no NULL check */
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getuid")
int good_third(void *ctx)
{
	return count();
}

SEC("tracepoint/syscalls/sys_enter_getgid")
int good_fourth(void *ctx)
{
	return count();
}
