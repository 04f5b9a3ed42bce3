// SPDX-License-Identifier: GPL-2.0
/*
 * A tp_btf program on a module's tracepoint: 9p_client_req, defined by the
 * 9pnet module (its btf_trace_ typedef is in 9pnet's BTF, not vmlinux's).
 * The VM tier's results share is 9p, so writing a file there fires it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

u64 requests;

SEC("tp_btf/9p_client_req")
int BPF_PROG(p9_request)
{
	__sync_fetch_and_add(&requests, 1);
	return 0;
}
