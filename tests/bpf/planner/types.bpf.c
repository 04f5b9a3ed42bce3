// SPDX-License-Identifier: GPL-2.0
/*
 * Type and enum relocations for test-planner: existence, size, ids,
 * type_matches, enumerator existence and values (32- and 64-bit).
 */
#include <linux/bpf.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct rec {
	int a;
	long b;
};
typedef struct rec rec_t;

struct absent {
	int z;
};

union num {
	int i;
	long l;
};

struct pair {
	int x;
	int y;
};

/* Both anonymous unions match the target's single one. */
struct matchme {
	int a;
	unsigned short b;
	struct rec *next;
	enum { MM_X, MM_Y } mode;
	struct pair pr;
	union {
		int u;
	};
	union {
		int u2;
	};
};

enum state {
	ST_IDLE,
	ST_RUN,
	ST_GONE,
};

enum big64 {
	BIG_LO = 1,
	BIG_HI = 0x100000000ULL,
};

SEC("socket")
int types(void *ctx)
{
	long r = 0;

	r += bpf_core_type_exists(struct rec);
	r += bpf_core_type_size(struct rec);
	r += bpf_core_type_exists(struct absent);
	r += bpf_core_type_size(rec_t);
	r += bpf_core_type_exists(union num);
	r += bpf_core_type_id_local(struct rec);
	r += bpf_core_type_id_kernel(struct rec);
	r += bpf_core_type_matches(struct matchme);
	r += bpf_core_enum_value_exists(enum state, ST_GONE);
	r += bpf_core_enum_value(enum state, ST_RUN);
	r += bpf_core_enum_value(enum big64, BIG_HI);
	return r;
}
