// SPDX-License-Identifier: GPL-2.0
/*
 * What libbpf looks for in module BTF when vmlinux lacks it, for test-planner
 * (opened, never loaded): a kfunc, a typed ksym, an iter target and a
 * struct_ops type, each named so that only the test's modules have it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

extern int bpfcored_test_kfunc(int x) __ksym;
extern const int bpfcored_test_ksym __ksym;

struct bpfcored_test_ops___v2 {
	int (*hook)(unsigned long long *ctx);
	int value;
};

SEC("socket")
int call_kfunc(void *ctx)
{
	return bpfcored_test_kfunc(1) + bpfcored_test_ksym;
}

SEC("iter/bpfcored_test")
int walk(void *ctx)
{
	return 0;
}

SEC("struct_ops/hook")
int hook(unsigned long long *ctx)
{
	return 0;
}

SEC(".struct_ops.link")
struct bpfcored_test_ops___v2 test_ops = {
	.hook = (void *)hook,
	.value = 1,
};
