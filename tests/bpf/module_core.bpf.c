// SPDX-License-Identifier: GPL-2.0
/*
 * Relocates against a type that only a module's BTF has: struct veth_priv
 * (drivers/net/veth.c). The VM tier loads it after `modprobe veth` (and
 * checks that it cannot relocate before and after the module is there).
 * The type is declared here, not taken from vmlinux.h: the build host may
 * have veth built in or not at all. The ___vm flavor keeps it apart from
 * any vmlinux.h definition; the essential name is veth_priv.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct veth_priv___vm {
	void *peer;
	unsigned int requested_headroom;
} __attribute__((preserve_access_index));

/* What the relocations resolved to, as the program saw them when it ran. */
u64 peer_offset;
u64 headroom_offset;
u64 calls;

SEC("tracepoint/syscalls/sys_enter_getpid")
int veth_types(void *ctx)
{
	peer_offset = bpf_core_field_offset(struct veth_priv___vm, peer);
	headroom_offset = bpf_core_field_offset(struct veth_priv___vm, requested_headroom);
	__sync_fetch_and_add(&calls, 1);
	return 0;
}
