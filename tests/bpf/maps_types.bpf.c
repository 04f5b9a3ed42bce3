// SPDX-License-Identifier: GPL-2.0
/*
 * Maps for the map codec test (tests/test-map-codec.c), no programs: the
 * test fills them from user space and compares the codec's JSON with what
 * bpftool prints. One map per shape: a plain hash, an array of a struct
 * with every kind of member, a per-CPU array whose value is not a multiple
 * of 8 bytes, an LRU hash with a struct key, floats, and globals in .data,
 * .bss and .rodata.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum run_state {
	RUN_IDLE = 0,
	RUN_ACTIVE = 1,
	RUN_DONE = 5,
};

struct inner {
	char comm[16];
	__u16 ports[3];
	__s8 delta;
};

struct record {
	__u32 pid;
	struct inner inner;
	enum run_state state;
	__u32 flags : 3;
	__u32 level : 5;
	__s32 offset : 7;
	__u32 matrix[2][3];
	union {
		__u64 cookie;
		__u32 halves[2];
	};
	bool valid;
	__s64 balance;
	unsigned __int128 wide;
	void *ptr;
	unsigned char raw[4];
	char bytes[4];
};

struct pcpu_stats {
	__u32 packets;
	__u32 drops;
	__u32 bytes;
};

struct flow_key {
	__u32 addr;
	__u16 port;
	__u8 proto;
};

struct samples {
	float f;
	double d;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct record);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} records SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct pcpu_stats);
} percpu_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8);
	__type(key, struct flow_key);
	__type(value, __u64);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct samples);
} floats SEC(".maps");

__u32 knob = 3;
char label[8] = "abc";
__u64 hits;
const volatile __u32 limit = 9;
