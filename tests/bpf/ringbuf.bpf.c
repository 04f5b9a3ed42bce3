// SPDX-License-Identifier: GPL-2.0
/*
 * Events through a ring buffer: every getpid() of the process that
 * configured target_tgid becomes a record an unprivileged agent reads from
 * the map fd bpfcored hands it (MapFd).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct event {
	u32 tgid;
	u32 seq;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

u32 seq;

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	struct event *e;
	u32 tgid = bpf_get_current_pid_tgid() >> 32;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->tgid = tgid;
	e->seq = seq++;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
