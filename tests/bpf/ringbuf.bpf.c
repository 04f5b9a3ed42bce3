// SPDX-License-Identifier: GPL-2.0
/*
 * Events through a ring buffer: every getpid() becomes a record an unprivileged agent reads from
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

/*
 * The agent's pid namespace (st_dev and st_ino of /proc/self/ns/pid): tgids
 * are reported as the agent sees them, so that an agent in a container knows
 * its own events. 0: the initial namespace's tgids.
 */
const volatile u64 pidns_dev;
const volatile u64 pidns_ino;

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	struct bpf_pidns_info ns = {};
	struct event *e;
	u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (pidns_ino) {
		/* Processes outside the agent's namespace have no tgid there. */
		if (bpf_get_ns_current_pid_tgid(pidns_dev, pidns_ino, &ns, sizeof(ns)))
			return 0;
		tgid = ns.tgid;
	}

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->tgid = tgid;
	e->seq = seq++;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
