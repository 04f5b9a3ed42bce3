// SPDX-License-Identifier: GPL-2.0
/*
 * Packet counters for the attach tests: ICMP echo requests and replies seen
 * by XDP, echo requests seen by tcx, and every packet a cgroup sends. All
 * let the traffic through.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8

enum { SLOT_XDP_ECHO, SLOT_XDP_REPLY, SLOT_TC_ECHO, SLOT_CGROUP_EGRESS, SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, u32);
	__type(value, u64);
} attach_net_counts SEC(".maps");

static __always_inline void count(u32 slot)
{
	u64 *v = bpf_map_lookup_elem(&attach_net_counts, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/* The ICMP type of an IPv4 ICMP frame, or -1. */
static __always_inline int icmp_type(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct icmphdr *icmp;

	if ((void *)(ip + 1) > data_end)
		return -1;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_ICMP || ip->ihl != 5)
		return -1;
	icmp = (void *)(ip + 1);
	if ((void *)(icmp + 1) > data_end)
		return -1;
	return icmp->type;
}

SEC("xdp")
int xdp_icmp(struct xdp_md *ctx)
{
	int type = icmp_type((void *)(long)ctx->data, (void *)(long)ctx->data_end);

	if (type == ICMP_ECHO)
		count(SLOT_XDP_ECHO);
	else if (type == ICMP_ECHOREPLY)
		count(SLOT_XDP_REPLY);
	return XDP_PASS;
}

SEC("tc")
int tc_icmp(struct __sk_buff *skb)
{
	if (icmp_type((void *)(long)skb->data, (void *)(long)skb->data_end) == ICMP_ECHO)
		count(SLOT_TC_ECHO);
	return TCX_NEXT;
}

SEC("cgroup_skb/egress")
int cgroup_egress(struct __sk_buff *skb)
{
	count(SLOT_CGROUP_EGRESS);
	return 1;
}
