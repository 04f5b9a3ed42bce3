// SPDX-License-Identifier: GPL-2.0
/*
 * Probes for the attach tests: a kprobe/kretprobe pair for kernel functions
 * and a uprobe/uretprobe pair for tests/uprobe-target.c's probed function,
 * each counting hits in its own slot; the uretprobe also sums what the
 * function returned, to show it saw the real return value. The multi-kprobe
 * pair has no target in its section: attached by pattern or list.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* Set before load: kernel probes count only this process. */
const volatile u32 target_tgid;

enum {
	SLOT_KPROBE,
	SLOT_KRETPROBE,
	SLOT_UPROBE,
	SLOT_URETPROBE,
	SLOT_URETURN_SUM,
	SLOT_KPROBE_MULTI,
	SLOT_KRETPROBE_MULTI,
	SLOTS
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, u32);
	__type(value, u64);
} attach_probe_counts SEC(".maps");

static __always_inline void add(u32 slot, u64 n)
{
	u64 *v = bpf_map_lookup_elem(&attach_probe_counts, &slot);

	if (v)
		__sync_fetch_and_add(v, n);
}

static __always_inline bool ours(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("kprobe")
int BPF_KPROBE(kprobe_hit)
{
	if (ours())
		add(SLOT_KPROBE, 1);
	return 0;
}

SEC("kretprobe")
int BPF_KRETPROBE(kretprobe_hit)
{
	if (ours())
		add(SLOT_KRETPROBE, 1);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(uprobe_hit)
{
	add(SLOT_UPROBE, 1);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(uretprobe_hit, int ret)
{
	add(SLOT_URETPROBE, 1);
	add(SLOT_URETURN_SUM, (u64)ret);
	return 0;
}

SEC("kprobe.multi")
int BPF_KPROBE(kprobe_multi_hit)
{
	if (ours())
		add(SLOT_KPROBE_MULTI, 1);
	return 0;
}

SEC("kretprobe.multi")
int BPF_KRETPROBE(kretprobe_multi_hit)
{
	if (ours())
		add(SLOT_KRETPROBE_MULTI, 1);
	return 0;
}
