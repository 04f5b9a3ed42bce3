// SPDX-License-Identifier: GPL-2.0
/*
 * CO-RE on a user-space structure: a uprobe-style program reading a field
 * of an application's own struct, whose layout comes from BTF the client
 * passes with the load (btf_fd), not from the kernel.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct bpfcored_app_conf {
	int version;
	long limit;
} __attribute__((preserve_access_index));

long last_limit;

SEC("uprobe")
int BPF_UPROBE(on_configure, struct bpfcored_app_conf *conf)
{
	long limit = 0;

	bpf_probe_read_user(&limit, sizeof(limit), (void *)conf + bpf_core_field_offset(conf->limit));
	last_limit = limit;
	return 0;
}
