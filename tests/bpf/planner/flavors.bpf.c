// SPDX-License-Identifier: GPL-2.0
/*
 * Flavors and candidates for test-planner: one field read through two
 * flavors of a struct, and fields whose candidates agree or disagree.
 */
#include <linux/bpf.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct proc___old {
	int pid;
	int legacy;
} __attribute__((preserve_access_index));

struct proc___new {
	int pid;
	long modern;
} __attribute__((preserve_access_index));

struct dup {
	int a;
	int b;
} __attribute__((preserve_access_index));

SEC("socket")
int flavors(void *ctx)
{
	long r = 0;

	if (bpf_core_field_exists(struct proc___new, modern))
		r += ((struct proc___new *)ctx)->modern;
	else
		r += ((struct proc___old *)ctx)->legacy;
	r += bpf_core_field_offset(struct dup, b);
	r += ((struct dup *)ctx)->a;
	return r;
}
