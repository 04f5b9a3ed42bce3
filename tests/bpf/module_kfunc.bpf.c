// SPDX-License-Identifier: GPL-2.0
/*
 * Kfuncs of a module: nf_conntrack's bpf_xdp_ct_lookup and bpf_ct_release.
 * Where nf_conntrack is a module (Debian's kernels in the VM tier), libbpf
 * finds them by walking the kernel's BTF objects; the daemon shows it only
 * nf_conntrack's. Where it is built in (this host), they are in vmlinux.
 */
/* Strong declarations of our own: vmlinux.h's are __weak, and an unresolved weak kfunc loads as a dead call. */
#define BPF_NO_KFUNC_PROTOTYPES
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *ctx, struct bpf_sock_tuple *tuple, u32 tuple__sz,
				  struct bpf_ct_opts *opts, u32 opts__sz) __ksym;
void bpf_ct_release(struct nf_conn *ct) __ksym;

u64 lookups, found;

SEC("xdp")
int ct_lookup(struct xdp_md *ctx)
{
	struct bpf_sock_tuple tuple = {};
	/* 12 bytes: the options as 6.1 knows them, which later kernels still take. */
	struct bpf_ct_opts opts = { .netns_id = -1, .l4proto = IPPROTO_TCP };
	struct nf_conn *ct;

	__sync_fetch_and_add(&lookups, 1);
	ct = bpf_xdp_ct_lookup(ctx, &tuple, sizeof(tuple.ipv4), &opts, 12);
	if (ct) {
		__sync_fetch_and_add(&found, 1);
		bpf_ct_release(ct);
	}
	return XDP_PASS;
}
