// SPDX-License-Identifier: GPL-2.0
/*
 * A perf_event program: counts the samples it runs on, all of them in one
 * slot and those taken while the test's own process ran in another.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* Set before load: the test's process. */
const volatile u32 target_tgid;

enum { SLOT_ALL, SLOT_TARGET, SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, u32);
	__type(value, u64);
} attach_perf_counts SEC(".maps");

static __always_inline void bump(u32 slot)
{
	u64 *v = bpf_map_lookup_elem(&attach_perf_counts, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	bump(SLOT_ALL);
	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		bump(SLOT_TARGET);
	return 0;
}
