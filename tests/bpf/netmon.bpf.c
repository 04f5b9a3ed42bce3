// SPDX-License-Identifier: GPL-2.0
/*
 * A real-world-sized object for the benchmark and the differential test, in
 * the shape of a network observability agent: per-flow TCP statistics from
 * BTF tracepoints on the socket and skb paths, connection state changes from
 * the classic tracepoint, packet and drop counters, an XDP and a cgroup_skb
 * program on the data path, events to user space through a ring buffer.
 * CO-RE reads of sock, tcp_sock, sk_buff and net_device, bitfields included.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define AF_INET_ 2
#define AF_INET6_ 10

struct flow_tuple {
	u32 saddr, daddr;
	u16 sport, dport;
	u16 family, proto;
};

struct flow_counters {
	u64 packets, bytes, retrans, drops, resets;
	u64 bytes_acked, bytes_received;
	u32 srtt_us, rtt_min_us, cwnd, ssthresh, mss;
	u32 lost, sacked, in_flight, rcv_wnd, snd_wnd;
	u32 state, ifindex;
};

struct event {
	u32 kind, pid;
	struct flow_tuple key;
	u32 oldstate, newstate;
	u64 value;
	char comm[16];
};

enum stat_slot {
	ST_RX, ST_TX, ST_DROP, ST_CONSUMED, ST_RETRANS, ST_RESET_TX, ST_RESET_RX, ST_BUF_LIMIT,
	ST_RCVQ_FULL, ST_XDP_IPV4, ST_XDP_IPV6, ST_XDP_OTHER, ST_CG_IN, ST_CG_OUT, ST_STATE, ST_MAX
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct flow_tuple);
	__type(value, struct flow_counters);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);
	__type(value, u64);
} per_ifindex SEC(".maps");

const volatile u32 sample_every = 1;

static __always_inline void count(u32 slot, u64 n)
{
	u64 *v = bpf_map_lookup_elem(&stats, &slot);

	if (v)
		*v += n;
}

static __always_inline void key_of_sock(struct flow_tuple *k, const struct sock *sk)
{
	k->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	k->saddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
	k->daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	k->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	k->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	k->proto = BPF_CORE_READ(sk, sk_protocol);
	if (k->family == AF_INET6_) {
		/* the last word of each v6 address stands in for it in this key */
		k->saddr = BPF_CORE_READ(sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[3]);
		k->daddr = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32[3]);
	}
}

static __always_inline struct flow_counters *flow_of(const struct sock *sk, struct flow_tuple *k)
{
	static const struct flow_counters zero = {};
	struct flow_counters *f;

	__builtin_memset(k, 0, sizeof(*k));
	key_of_sock(k, sk);
	f = bpf_map_lookup_elem(&flows, k);
	if (f)
		return f;
	bpf_map_update_elem(&flows, k, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&flows, k);
}

static __always_inline void tcp_sample(struct flow_counters *f, const struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	f->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	f->rtt_min_us = BPF_CORE_READ(tp, rtt_min.s[0].v);
	f->cwnd = BPF_CORE_READ(tp, snd_cwnd);
	f->ssthresh = BPF_CORE_READ(tp, snd_ssthresh);
	f->mss = BPF_CORE_READ(tp, mss_cache);
	f->lost = BPF_CORE_READ(tp, lost_out);
	f->sacked = BPF_CORE_READ(tp, sacked_out);
	f->in_flight = BPF_CORE_READ(tp, packets_out) - f->sacked - f->lost + BPF_CORE_READ(tp, retrans_out);
	f->rcv_wnd = BPF_CORE_READ(tp, rcv_wnd);
	f->snd_wnd = BPF_CORE_READ(tp, snd_wnd);
	f->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	f->bytes_received = BPF_CORE_READ(tp, bytes_received);
	f->retrans = BPF_CORE_READ(tp, total_retrans);
	f->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (bpf_core_field_exists(tp->delivered_ce))
		f->drops += BPF_CORE_READ(tp, delivered_ce);
}

static __always_inline void emit(u32 kind, const struct flow_tuple *k, u32 oldstate, u32 newstate, u64 value)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return;
	e->kind = kind;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->key = *k;
	e->oldstate = oldstate;
	e->newstate = newstate;
	e->value = value;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void skb_account(const struct sk_buff *skb, u32 slot)
{
	const struct net_device *dev = BPF_CORE_READ(skb, dev);
	u32 ifindex = dev ? BPF_CORE_READ(dev, ifindex) : BPF_CORE_READ(skb, skb_iif);
	u64 len = BPF_CORE_READ(skb, len), *v;

	count(slot, 1);
	v = bpf_map_lookup_elem(&per_ifindex, &ifindex);
	if (v)
		*v += len;
	else
		bpf_map_update_elem(&per_ifindex, &ifindex, &len, BPF_ANY);
}

static __always_inline void skb_flow(const struct sk_buff *skb, u64 drops)
{
	const struct sock *sk = BPF_CORE_READ(skb, sk);
	struct flow_counters *f;
	struct flow_tuple k;

	if (!sk)
		return;
	f = flow_of(sk, &k);
	if (!f)
		return;
	f->packets++;
	f->bytes += BPF_CORE_READ(skb, len) - BPF_CORE_READ(skb, data_len);
	f->drops += drops;
	f->ifindex = BPF_CORE_READ(skb, skb_iif);
	if (BPF_CORE_READ_BITFIELD_PROBED(skb, pkt_type) != 0)
		f->drops += 0;
}

/* The skb paths, with BTF arguments. */

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(rx_skb, struct sk_buff *skb)
{
	skb_account(skb, ST_RX);
	skb_flow(skb, 0);
	return 0;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(tx_queue, struct sk_buff *skb)
{
	skb_account(skb, ST_TX);
	skb_flow(skb, 0);
	return 0;
}

SEC("tp_btf/net_dev_xmit")
int BPF_PROG(tx_done, struct sk_buff *skb, int rc, struct net_device *dev, unsigned int len)
{
	if (rc != 0)
		count(ST_DROP, 1);
	if (BPF_CORE_READ(dev, mtu) < len)
		count(ST_DROP, 0);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(dropped, struct sk_buff *skb, void *location, enum skb_drop_reason reason, struct sock *rx_sk)
{
	struct flow_tuple k = {};

	count(ST_DROP, 1);
	skb_flow(skb, 1);
	if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NO_SOCKET)) {
		k.proto = BPF_CORE_READ(skb, protocol);
		emit(1, &k, 0, 0, reason);
	}
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_TCP_CSUM) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_TCP_CSUM))
		count(ST_DROP, 1);
	return 0;
}

SEC("tp_btf/consume_skb")
int BPF_PROG(consumed, struct sk_buff *skb, void *location)
{
	count(ST_CONSUMED, 1);
	return 0;
}

/* TCP, with BTF arguments. */

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retrans, const struct sock *sk, const struct sk_buff *skb, int err)
{
	struct flow_counters *f;
	struct flow_tuple k;

	count(ST_RETRANS, 1);
	f = flow_of(sk, &k);
	if (!f)
		return 0;
	tcp_sample(f, sk);
	emit(2, &k, 0, 0, f->retrans);
	return 0;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
	struct flow_counters *f;
	struct flow_tuple k;

	if (sample_every > 1 && bpf_get_prandom_u32() % sample_every)
		return 0;
	f = flow_of(sk, &k);
	if (f)
		tcp_sample(f, sk);
	return 0;
}

SEC("tp_btf/tcp_rcv_space_adjust")
int BPF_PROG(tcp_rcv_space, struct sock *sk)
{
	struct flow_counters *f;
	struct flow_tuple k;

	f = flow_of(sk, &k);
	if (f)
		f->rcv_wnd = BPF_CORE_READ((struct tcp_sock *)sk, rcvq_space.space);
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(tcp_destroy, struct sock *sk)
{
	struct flow_counters *f;
	struct flow_tuple k;

	f = flow_of(sk, &k);
	if (!f)
		return 0;
	tcp_sample(f, sk);
	emit(3, &k, f->state, 0, f->bytes_acked + f->bytes_received);
	bpf_map_delete_elem(&flows, &k);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tcp_rst_tx, const struct sock *sk, const struct sk_buff *skb, const enum sk_rst_reason reason)
{
	struct flow_counters *f;
	struct flow_tuple k;

	count(ST_RESET_TX, 1);
	if (!sk)
		return 0;
	f = flow_of(sk, &k);
	if (f)
		f->resets++;
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tcp_rst_rx, struct sock *sk)
{
	struct flow_counters *f;
	struct flow_tuple k;

	count(ST_RESET_RX, 1);
	f = flow_of(sk, &k);
	if (f) {
		f->resets++;
		emit(4, &k, f->state, BPF_CORE_READ(sk, __sk_common.skc_state), f->resets);
	}
	return 0;
}

SEC("tp_btf/sock_exceed_buf_limit")
int BPF_PROG(buf_limit, struct sock *sk, struct proto *prot, long allocated, int kind)
{
	struct flow_tuple k = {};

	count(ST_BUF_LIMIT, 1);
	key_of_sock(&k, sk);
	emit(5, &k, BPF_CORE_READ(sk, sk_sndbuf), BPF_CORE_READ(sk, sk_rcvbuf),
	     allocated * BPF_CORE_READ(prot, max_header));
	return 0;
}

SEC("tp_btf/sock_rcvqueue_full")
int BPF_PROG(rcvq_full, struct sock *sk, struct sk_buff *skb)
{
	struct flow_tuple k = {};

	count(ST_RCVQ_FULL, 1);
	key_of_sock(&k, sk);
	emit(6, &k, BPF_CORE_READ(sk, sk_rcvbuf), BPF_CORE_READ(skb, truesize),
	     BPF_CORE_READ(sk, sk_backlog.rmem_alloc.counter));
	return 0;
}

/* Connection states, from the classic tracepoint's record (its layout relocated too). */

SEC("tracepoint/sock/inet_sock_set_state")
int state_change(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct flow_tuple k = {};

	if (BPF_CORE_READ(ctx, protocol) != IPPROTO_TCP)
		return 0;
	count(ST_STATE, 1);
	k.family = BPF_CORE_READ(ctx, family);
	k.sport = BPF_CORE_READ(ctx, sport);
	k.dport = BPF_CORE_READ(ctx, dport);
	k.proto = IPPROTO_TCP;
	if (k.family == AF_INET_) {
		bpf_core_read(&k.saddr, sizeof(k.saddr), &ctx->saddr);
		bpf_core_read(&k.daddr, sizeof(k.daddr), &ctx->daddr);
	} else {
		bpf_core_read(&k.saddr, sizeof(k.saddr), &ctx->saddr_v6[12]);
		bpf_core_read(&k.daddr, sizeof(k.daddr), &ctx->daddr_v6[12]);
	}
	emit(7, &k, BPF_CORE_READ(ctx, oldstate), BPF_CORE_READ(ctx, newstate), (u64)BPF_CORE_READ(ctx, skaddr));
	return 0;
}

/* The same, through the raw tracepoint and probe reads, for kernels without BTF tracepoints. */

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(state_change_raw, const struct sock *sk, int oldstate, int newstate)
{
	struct flow_counters *f;
	struct flow_tuple k;

	f = flow_of(sk, &k);
	if (!f)
		return 0;
	f->state = newstate;
	if (newstate == BPF_TCP_CLOSE)
		tcp_sample(f, sk);
	return 0;
}

SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(tcp_retrans_raw, const struct sock *sk, const struct sk_buff *skb)
{
	struct flow_counters *f;
	struct flow_tuple k;

	f = flow_of(sk, &k);
	if (f)
		tcp_sample(f, sk);
	return 0;
}

SEC("raw_tp/kfree_skb")
int BPF_PROG(dropped_raw, struct sk_buff *skb)
{
	skb_flow(skb, 1);
	return 0;
}

SEC("raw_tp/netif_receive_skb")
int BPF_PROG(rx_skb_raw, struct sk_buff *skb)
{
	skb_account(skb, ST_RX);
	return 0;
}

/* The data path: XDP and cgroup_skb (context accesses, no CO-RE). */

SEC("xdp")
int xdp_classify(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP_)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		count(ST_XDP_IPV4, 1);
		if (ip->protocol == IPPROTO_TCP) {
			struct tcphdr *th = (void *)ip + ip->ihl * 4;

			if ((void *)(th + 1) <= end && th->rst)
				count(ST_RESET_RX, 1);
		}
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6_))
		count(ST_XDP_IPV6, 1);
	else
		count(ST_XDP_OTHER, 1);
	return XDP_PASS;
}

SEC("cgroup_skb/ingress")
int cg_ingress(struct __sk_buff *skb)
{
	count(ST_CG_IN, skb->len);
	return 1;
}

SEC("cgroup_skb/egress")
int cg_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;

	count(ST_CG_OUT, skb->len);
	if (sk) {
		sk = bpf_sk_fullsock(sk);
		if (sk && sk->protocol == IPPROTO_TCP)
			count(ST_TX, 0);
	}
	return 1;
}

/* One per watched device class, as agents that split their counters do. */

#define DEV_PROG(n)                                                                 \
	SEC("tp_btf/netif_receive_skb")                                             \
	int BPF_PROG(rx_dev_##n, struct sk_buff *skb)                               \
	{                                                                           \
		const struct net_device *dev = BPF_CORE_READ(skb, dev);             \
		u32 key = n;                                                        \
		u64 *v;                                                             \
                                                                                    \
		if (!dev || (BPF_CORE_READ(dev, type) & 0xf) != n)                  \
			return 0;                                                   \
		v = bpf_map_lookup_elem(&per_ifindex, &key);                        \
		if (v)                                                              \
			*v += BPF_CORE_READ(skb, len) + BPF_CORE_READ(dev, hard_header_len); \
		skb_flow(skb, 0);                                                   \
		return 0;                                                           \
	}

DEV_PROG(0) DEV_PROG(1) DEV_PROG(2) DEV_PROG(3) DEV_PROG(4) DEV_PROG(5) DEV_PROG(6) DEV_PROG(7)
