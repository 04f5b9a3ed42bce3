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
        return fd >= 0 && readlink(proc, target, sizeof(target) - 1) > 0 && strcmp(target, "anon_inode:[eventfd]") == 0;
}

static bool take(const char *name, int *ret) {
        return prog_batch_take(BPF_PROG_TYPE_TRACEPOINT, name, "GPL", NULL, 0, NULL, ret);
}

TEST(open_objects) {
        tailcalls = open_test_object("tailcalls");
        globals = open_test_object("globals");
        if (!tap_ok(tailcalls && globals, "tailcalls.bpf.o and globals.bpf.o open"))
                tap_skip_all("no test objects");
        prog_batch_set_threads(2);
}

TEST(stand_ins_in_order) {
        int fd = -1, bound = -1, other = -1;

        prog_batch_begin(tailcalls);
        tap_ok(take("stage_one", &fd), "the first program is taken");
        tap_ok(is_eventfd(fd), "and answered with a stand-in that is no program");
        tap_ok(prog_batch_bind(fd, 99, NULL, &bound) && bound == 0, "a map bound to the stand-in is taken");
        tap_ok(!prog_batch_bind(fd + 1000, 99, NULL, &bound), "a bind to any other fd is not");
        tap_ok(!prog_batch_take(BPF_PROG_TYPE_SOCKET_FILTER, NULL, "GPL", NULL, 0, NULL, &other),
               "a feature probe (no name) is not taken");
        tap_ok(!take("libbpf_nametest", &other), "nor a request under a name the object has not");
        tap_ok(prog_batch_end(), "a batch that never ran: the load is done again");
        close(fd);
}

TEST(out_of_order) {
        int fd = -1, r = 0;

        prog_batch_begin(tailcalls);
        tap_ok(take("stage_one", &fd), "stage_one is taken");
        tap_ok(take("dispatch", &r) && r == -EAGAIN, "dispatch before stage_two fails the batch");
        tap_ok(take("dispatch", &r) && r == -EAGAIN, "and so does libbpf's asking again for it, with a log");
        tap_ok(prog_batch_end(), "the load is done again, one program at a time");
        close(fd);
}

TEST(wrong_type) {
        int r = 0;

        prog_batch_begin(tailcalls);
        tap_ok(prog_batch_take(BPF_PROG_TYPE_XDP, "stage_one", "GPL", NULL, 0, NULL, &r) && r == -EAGAIN,
               "the right name with another program type fails the batch");
        tap_ok(prog_batch_end(), "the load is done again");
}

TEST(asked_with_a_log) {
        LIBBPF_OPTS(bpf_prog_load_opts, opts, .log_level = 1);
        int r = 0;

        prog_batch_begin(tailcalls);
        tap_ok(prog_batch_take(BPF_PROG_TYPE_TRACEPOINT, "stage_one", "GPL", NULL, 0, &opts, &r) && r == -EAGAIN,
               "a request with a verifier log fails the batch");
        tap_ok(prog_batch_end(), "the load is done again");
}

TEST(no_batch) {
        int r = 0;

        prog_batch_begin(globals);
        tap_ok(!prog_batch_take(BPF_PROG_TYPE_TRACEPOINT, "count_getpid", "GPL", NULL, 0, NULL, &r),
               "an object of one program has no batch");
        tap_ok(!prog_batch_end(), "and nothing to do again");

        prog_batch_set_threads(1);
        prog_batch_begin(tailcalls);
        tap_ok(!take("stage_one", &r), "with one thread, an object of three programs has none either");
        tap_ok(!prog_batch_end(), "nor anything to do again");

        prog_batch_set_threads(2);
        tap_ok(!take("stage_one", &r) && !prog_batch_end(), "outside a load, nothing is taken");
        tap_is_int(prog_batch_loads(), 0, "no batch ran");
        bpf_object__close(tailcalls);
        bpf_object__close(globals);
}

TAP_MAIN
