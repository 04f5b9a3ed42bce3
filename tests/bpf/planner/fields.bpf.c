// SPDX-License-Identifier: GPL-2.0
/*
 * Field relocations for test-planner: plain, pointer-chased, array, anonymous,
 * bitfield and flexible-array accesses on a local struct the test gives
 * different target layouts. Loaded only to make libbpf relocate it: the
 * verifier may reject it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

typedef int pid_type;

struct inner {
	int x;
	unsigned short y;
} __attribute__((preserve_access_index));

struct task {
	pid_type pid;
	int tgid;
	struct task *parent;
	struct inner in;
	char comm[16];
	union {
		long u1;
		struct {
			int a1;
			int a2;
		};
	};
	unsigned int flag1 : 3;
	int flag2 : 5;
	unsigned long long big : 40;
	unsigned int count;
	int tail[];
} __attribute__((preserve_access_index));

SEC("socket")
int fields(struct task *t)
{
	long r = 0;

	r += t->pid;
	r += t->parent->tgid;
	r += t->count;
	r += bpf_core_field_size(t->comm);
	r += bpf_core_field_offset(t->comm[3]);
	r += bpf_core_field_offset(t->a2);
	r += bpf_core_field_exists(t->in.y);
	/* libbpf 1.4 has no bpf_core_field_signed() */
	r += __builtin_preserve_field_info(t->flag2, BPF_FIELD_SIGNED);
	r += BPF_CORE_READ_BITFIELD(t, flag1);
	r += BPF_CORE_READ_BITFIELD(t, big);
	r += bpf_core_field_offset(t->tail[2]);
	r += bpf_core_field_exists(t->tail);
	return r;
}
