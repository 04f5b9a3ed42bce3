// SPDX-License-Identifier: GPL-2.0
/*
 * Raw material for test-planner's malformed-object cases: the test patches
 * the compiled bytes (access strings, type ids, .BTF.ext header and records,
 * a typedef made to refer to itself).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

typedef int loopy_t;

struct bad {
	loopy_t via_typedef;
	int access_string_scratch_area_for_the_tests;
} __attribute__((preserve_access_index));

SEC("socket")
int bad(struct bad *b)
{
	return b->via_typedef + b->access_string_scratch_area_for_the_tests;
}
