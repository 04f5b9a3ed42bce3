// SPDX-License-Identifier: GPL-2.0
/*
 * A map pinned by name, so a second load of this object (or another object
 * declaring the same map) shares it instead of creating a new one.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64); /* forks seen */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shared_counts SEC(".maps");

SEC("tracepoint/sched/sched_process_fork")
int count_fork(void *ctx)
{
	__u32 key = 0;
	__u64 *forks = bpf_map_lookup_elem(&shared_counts, &key);

	if (forks)
		__sync_fetch_and_add(forks, 1);
	return 0;
}
