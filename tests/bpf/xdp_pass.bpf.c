// SPDX-License-Identifier: GPL-2.0
/* Counts packets and bytes per CPU and lets every packet through. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct datarec {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct datarec);
} xdp_stats SEC(".maps");

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct datarec *rec = bpf_map_lookup_elem(&xdp_stats, &key);

	if (rec) {
		/* Per-CPU slot: no atomics needed. */
		rec->packets++;
		rec->bytes += ctx->data_end - ctx->data;
	}
	return XDP_PASS;
}
