// SPDX-License-Identifier: GPL-2.0
/*
 * fentry and fexit on a module's function, veth_open (drivers/net/veth.c):
 * the attach target is found in the module's BTF, not vmlinux's; the fexit
 * names the module ("veth:veth_open"), as the daemon allows. The VM tier
 * loads it after `modprobe veth` and counts a veth device going up.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

u64 open_calls;
u64 open_returns_ok;

SEC("fentry/veth_open")
int BPF_PROG(veth_open_entry, struct net_device *dev)
{
	__sync_fetch_and_add(&open_calls, 1);
	return 0;
}

SEC("fexit/veth:veth_open")
int BPF_PROG(veth_open_exit, struct net_device *dev, int ret)
{
	if (ret == 0)
		__sync_fetch_and_add(&open_returns_ok, 1);
	return 0;
}
