/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of daemon/prog-batch.c up to the point where programs would be
 * loaded: which of libbpf's requests a batch takes, what it answers, and
 * when the load must be done again one program at a time. The loads
 * themselves (and what libbpf does with them) are in test-integration and
 * the differential test of test-btf.
 */
#include <bpf/libbpf.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prog-batch.h"
#include "tap.h"

static struct bpf_object *tailcalls, *globals;

static struct bpf_object *open_test_object(const char *name) {
        const char *dir = getenv("BPF_OBJECTS_DIR");
        char path[PATH_MAX];

        if (!dir)
                tap_skip_all("BPF_OBJECTS_DIR is not set: run this test through meson test");
        snprintf(path, sizeof(path), "%s/%s.bpf.o", dir, name);
        return bpf_object__open_file(path, NULL);
}

static bool is_eventfd(int fd) {
        char proc[64], target[64] = "";

        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        return fd >= 0 && readlink(proc, target, sizeof(target) - 1) > 0 &&
               strcmp(target, "anon_inode:[eventfd]") == 0;
}

/* libbpf's own string for the program's name: what libbpf passes to bpf_prog_load(). */
static const char *prog(struct bpf_object *obj, const char *name) {
        struct bpf_program *p = bpf_object__find_program_by_name(obj, name);

        return p ? bpf_program__name(p) : name;
}

static bool take(const char *name, int *ret) {
        return prog_batch_take(BPF_PROG_TYPE_TRACEPOINT, prog(tailcalls, name), "GPL", NULL, 0, NULL, ret);
}

TEST(open_objects) {
        tailcalls = open_test_object("tailcalls");
        globals = open_test_object("globals");
        if (!tap_ok(tailcalls && globals, "tailcalls.bpf.o and globals.bpf.o open"))
                tap_skip_all("no test objects");
        prog_batch_set_threads(2);
}

TEST(stand_ins_in_order) {
        char same_name[] = "stage_one";
        int fd = -1, bound = -1, other = -1;

        prog_batch_begin(tailcalls);
        tap_ok(take("stage_one", &fd), "the first program is taken");
        tap_ok(is_eventfd(fd), "and answered with a stand-in that is no program");
        tap_ok(prog_batch_bind(fd, 99, NULL, &bound) && bound == 0, "a map bound to the stand-in is taken");
        tap_ok(!prog_batch_bind(fd + 1000, 99, NULL, &bound), "a bind to any other fd is not");
        tap_ok(!prog_batch_take(BPF_PROG_TYPE_SOCKET_FILTER, NULL, "GPL", NULL, 0, NULL, &other),
               "a request without a name (a feature probe) is not taken");
        tap_ok(!prog_batch_take(BPF_PROG_TYPE_TRACEPOINT, same_name, "GPL", NULL, 0, NULL, &other),
               "nor one named like a program in a string of its own (libbpf's probes name theirs)");
        tap_ok(prog_batch_end(0),
               "libbpf done with stand-ins of a batch that never ran: the load is done again");
        close(fd);

        prog_batch_begin(tailcalls);
        tap_ok(take("stage_one", &fd), "a stand-in again");
        tap_ok(!prog_batch_end(-ENOENT),
               "libbpf failing by itself before the batch ran: its own failure stands");
        close(fd);
}

TEST(out_of_order) {
        int fd = -1, r = 0;
        bool taken;

        prog_batch_begin(tailcalls);
        tap_ok(take("stage_one", &fd), "stage_one is taken");
        taken = take("dispatch", &r);
        tap_ok(taken && r == -EAGAIN, "dispatch before stage_two fails the batch");
        taken = take("dispatch", &r);
        tap_ok(taken && r == -EAGAIN, "and so does libbpf's asking again for it, with a log");
        taken = take("stage_two", &r);
        tap_ok(!taken, "another program after that is libbpf's own");
        tap_ok(prog_batch_end(-EAGAIN), "the load is done again, one program at a time");
        close(fd);
}

TEST(wrong_type) {
        int r = 0;
        bool taken;

        prog_batch_begin(tailcalls);
        taken = prog_batch_take(BPF_PROG_TYPE_XDP, prog(tailcalls, "stage_one"), "GPL", NULL, 0, NULL, &r);
        tap_ok(taken && r == -EAGAIN, "the right program with another program type fails the batch");
        tap_ok(prog_batch_end(-EAGAIN), "the load is done again");
}

TEST(options) {
        LIBBPF_OPTS(bpf_prog_load_opts, logged, .log_level = 1);
        struct {
                struct bpf_prog_load_opts opts;
                uint64_t newer; /* an option of a newer libbpf */
        } grown = { .opts = { .sz = sizeof(grown) } };
        int r = 0, fd = -1;
        bool taken;

        prog_batch_begin(tailcalls);
        taken = prog_batch_take(BPF_PROG_TYPE_TRACEPOINT, prog(tailcalls, "stage_one"), "GPL", NULL, 0,
                                &logged, &r);
        tap_ok(taken && r == -EAGAIN, "a request with a verifier log fails the batch");
        tap_ok(prog_batch_end(-EAGAIN), "the load is done again");

        prog_batch_begin(tailcalls);
        taken = prog_batch_take(BPF_PROG_TYPE_TRACEPOINT, prog(tailcalls, "stage_one"), "GPL", NULL, 0,
                                &grown.opts, &fd);
        tap_ok(taken && is_eventfd(fd), "larger options from a newer libbpf, unset beyond ours, are taken");
        close(fd);
        prog_batch_end(0);

        grown.newer = 1;
        prog_batch_begin(tailcalls);
        taken = prog_batch_take(BPF_PROG_TYPE_TRACEPOINT, prog(tailcalls, "stage_one"), "GPL", NULL, 0,
                                &grown.opts, &r);
        tap_ok(taken && r == -EAGAIN, "with an option set beyond ours, they fail the batch");
        tap_ok(prog_batch_end(-EAGAIN), "the load is done again");
}

TEST(no_batch) {
        int r = 0;

        prog_batch_begin(globals);
        tap_ok(!prog_batch_take(BPF_PROG_TYPE_TRACEPOINT, prog(globals, "count_getpid"), "GPL", NULL, 0,
                                NULL, &r),
               "an object of one program has no batch");
        tap_ok(!prog_batch_end(0), "and nothing to do again");

        prog_batch_set_threads(1);
        prog_batch_begin(tailcalls);
        tap_ok(!take("stage_one", &r), "with one thread, an object of three programs has none either");
        tap_ok(!prog_batch_end(0), "nor anything to do again");

        prog_batch_set_threads(2);
        tap_ok(!take("stage_one", &r) && !prog_batch_end(0), "outside a load, nothing is taken");
        tap_is_int(prog_batch_loads(), 0, "no batch ran");
        bpf_object__close(tailcalls);
        bpf_object__close(globals);
}

TAP_MAIN
