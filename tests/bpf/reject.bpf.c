// SPDX-License-Identifier: GPL-2.0
/*
 * Compiles, but the verifier refuses it: a hash map lookup may return NULL
 * and the result is dereferenced unchecked ("R0 invalid mem access
 * 'map_value_or_null'"). Used to test how a rejection is reported. A hash
 * map, because newer verifiers know that an array lookup with a constant,
 * in-bounds key cannot fail.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);   /* tgid */
	__type(value, __u64); /* getpid() calls */
} calls SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int bad_access(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 *count = bpf_map_lookup_elem(&calls, &tgid);

	*count += 1; /* deliberately no NULL check */
	return 0;
}
