// SPDX-License-Identifier: GPL-2.0
/*
 * Module BTF for test-planner: a type only a module has, and one that both
 * vmlinux and a module have (vmlinux wins).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct modstruct {
	int m1;
	int m2;
} __attribute__((preserve_access_index));

struct shared {
	int s;
} __attribute__((preserve_access_index));

SEC("socket")
int split(void *ctx)
{
	return ((struct modstruct *)ctx)->m2 + ((struct shared *)ctx)->s;
}
