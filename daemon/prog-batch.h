/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An object's programs verified side by side. libbpf loads an object's
 * programs one after the other, and the kernel's verifier runs in the
 * loading thread, so a real-world object (dozens of programs) spends most
 * of its load on one CPU while the others idle. During a batch, libbpf's
 * request for each program is answered with a stand-in fd and set aside;
 * the request for the last one loads them all on as many threads as the
 * daemon has CPUs, then puts each program in its stand-in's place (dup3),
 * so libbpf ends up holding exactly the programs it asked for, with the
 * attributes it chose. Maps libbpf bound to a stand-in are bound to the
 * program. If any program fails, the batch fails as a whole and the load is
 * to be done again one program at a time, for libbpf's own report.
 */
#pragma once

#include <bpf/bpf.h>
#include <stdbool.h>

struct bpf_object;

#define PROG_BATCH_THREADS_MAX 64u

/* Threads one batch may use: 0 for as many as the CPUs the daemon may run on (the default), 1 for none. */
void prog_batch_set_threads(unsigned n);

/* Before bpf_object__load(obj) in this thread: batch its programs if there are two or more to load and
 * more than one thread to load them on. */
void prog_batch_begin(const struct bpf_object *obj);

/* From bpf_prog_load(): if the request is one of the batch's programs (libbpf passes the program's own name
 * string, as bpf_program__name() gave it), it is taken (true) and *ret is a stand-in fd, or for the last
 * one, what loading them all gave, or -errno. Anything else (libbpf's feature probes) is not. */
bool prog_batch_take(enum bpf_prog_type type, const char *name, const char *license,
                     const struct bpf_insn *insns, size_t insn_cnt, const struct bpf_prog_load_opts *opts,
                     int *ret);

/* From bpf_prog_bind_map(): a bind to a stand-in is taken (true, *ret 0) and made once the program is in. */
bool prog_batch_bind(int prog_fd, int map_fd, const struct bpf_prog_bind_opts *opts, int *ret);

/* After bpf_object__load(), with what it returned: true if the load is to be done again without a batch
 * (a batch failed, or libbpf did not load the programs foreseen), even if it returned success. */
bool prog_batch_end(int load_result);

/* Loads whose programs were verified side by side; programs loaded that way; batches that failed. */
unsigned prog_batch_loads(void);
unsigned prog_batch_programs(void);
unsigned prog_batch_failures(void);
/* Helper threads started (besides the loading thread). */
unsigned prog_batch_helpers(void);
