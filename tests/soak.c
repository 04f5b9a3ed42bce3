/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Soak: load / attach / detach / unload cycles through the socket against a
 * private daemon, then the daemon's open fds, its RSS and the kernel's
 * programs, maps and links must be back where they started. Prints a table
 * and TAP checks.
 *
 *   build/tests/soak [CYCLES]           (as root; default 10000)
 *   SOAK_VALGRIND=1 build/tests/soak 50 (the daemon under valgrind: no definite leak)
 *
 * Every kernel id the daemon reported (programs, maps, links) is remembered
 * and must be gone at the end: ids are never reused, so other processes
 * loading programs meanwhile cannot disturb the check.
 */
#include <bpf/bpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "macro.h"
#include "tap.h"

#define WARMUP 20

static TestDaemon d;

typedef struct Ids {
        uint32_t *v;
        size_t n, alloc;
} Ids;

static Ids progs, maps, links;

static void ids_add(Ids *ids, int64_t id) {
        if (id <= 0)
                return;
        if (ids->n == ids->alloc) {
                ids->alloc = ids->alloc ? ids->alloc * 2 : 1024;
                ids->v = realloc(ids->v, ids->alloc * sizeof(uint32_t));
                if (!ids->v)
                        abort();
        }
        ids->v[ids->n++] = (uint32_t) id;
}

/* Ids still alive in the kernel, after giving freed ones time to go (they are freed asynchronously). */
static size_t ids_alive(const Ids *ids, int (*get_fd)(uint32_t)) {
        size_t alive = 0;

        for (size_t i = 0; i < ids->n; i++)
                for (int tries = 0;; tries++) {
                        int fd = get_fd(ids->v[i]);

                        if (fd < 0)
                                break;
                        close(fd);
                        if (tries == 300) {
                                tap_diag("kernel id %u is still alive", ids->v[i]);
                                alive++;
                                break;
                        }
                        usleep(10000);
                }
        return alive;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static long count_ids(int (*next)(uint32_t, uint32_t *)) {
        uint32_t id = 0;
        long n = 0;

        while (next(id, &id) == 0)
                n++;
        return n;
}

typedef struct Sample {
        long fds, rss, progs, maps, links;
} Sample;

static Sample sample(void) {
        /* Hang-ups of the last connections are processed asynchronously: wait for the fd count to hold. */
        long fds = harness_pid_fds(d.pid);

        for (int i = 0, same = 0; i < 100 && same < 3; i++) {
                long now;

                usleep(20000);
                now = harness_pid_fds(d.pid);
                same = now == fds ? same + 1 : 0;
                fds = now;
        }
        return (Sample){
                .fds = fds,
                .rss = harness_pid_rss_kib(d.pid),
                .progs = count_ids(bpf_prog_get_next_id),
                .maps = count_ids(bpf_map_get_next_id),
                .links = count_ids(bpf_link_get_next_id),
        };
}

static int call_on(BpfcoreClient *c, const char *method, const char *json, const int *fds, size_t n_fds,
                   BpfcoreReply *r) {
        json_object *p = json_tokener_parse(json);
        int rc = bpfcore_call(c, method, p, fds, n_fds, r);

        json_object_put(p);
        return rc;
}

/* One load / attach / detach / unload; 0 when every reply was right. */
static bool with_attach = true;

static int cycle(BpfcoreClient *c, int object_fd, const char **ret_step) {
        _cleanup_(bpfcore_reply_done) BpfcoreReply load = {}, att = {}, det = {}, unl = {};
        json_object *programs, *prog, *mapv;
        int64_t id, link;
        char json[256];

        *ret_step = "Load";
        if (call_on(c, "io.bpfcored.Load", "{\"fd\":0}", &object_fd, 1, &load) < 0 || load.error)
                return -EIO;
        id = object_int(&load, "id");
        programs = object_get(&load, "programs");
        prog = array_find_name(programs, "count_getpid");
        if (id <= 0 || !prog || json_int(prog, "id") <= 0)
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(programs); i++)
                ids_add(&progs, json_int(json_object_array_get_idx(programs, i), "id"));
        mapv = object_get(&load, "maps");
        for (size_t i = 0; mapv && i < json_object_array_length(mapv); i++)
                ids_add(&maps, json_int(json_object_array_get_idx(mapv, i), "id"));

        if (!with_attach)
                goto unload;
        *ret_step = "Attach";
        snprintf(json, sizeof(json),
                 "{\"id\":%lld,\"program\":\"count_getpid\",\"tracepoint\":\"syscalls/sys_enter_getpid\"}",
                 (long long) id);
        if (call_on(c, "io.bpfcored.Attach", json, NULL, 0, &att) < 0 || att.error)
                return -EIO;
        link = json_int(json_object_object_get(att.parameters, "link"), "id");
        if (link <= 0)
                return -EBADMSG;
        ids_add(&links, link);

        *ret_step = "Detach";
        snprintf(json, sizeof(json), "{\"link\":%lld}", (long long) link);
        if (call_on(c, "io.bpfcored.Detach", json, NULL, 0, &det) < 0 || det.error)
                return -EIO;

unload:
        *ret_step = "Unload";
        snprintf(json, sizeof(json), "{\"id\":%lld}", (long long) id);
        if (call_on(c, "io.bpfcored.Unload", json, NULL, 0, &unl) < 0 || unl.error)
                return -EIO;
        return 0;
}

static const char *const valgrind_argv[] = {
        "valgrind", "--leak-check=full", "--show-leak-kinds=definite", "--child-silent-after-fork=yes", NULL, NULL,
};

int main(int argc, char **argv) {
        unsigned cycles = argc > 1 ? (unsigned) strtoul(argv[1], NULL, 10) : 10000, done = 0, failed = 0;
        bool valgrind = getenv("SOAK_VALGRIND") != NULL,
             check_rss = !getenv("BPFCORED_SANITIZED") && !valgrind;
        _cleanup_free_ char *path = NULL, *vg_log = NULL, *vg_text = NULL;
        _cleanup_close_ int object_fd = -1;
        BpfcoreClient *c = NULL;
        const char *vg[ELEMENTSOF(valgrind_argv)];
        uint64_t t0, elapsed, slowest = 0;
        Sample start, end;
        int r;

#ifdef SOAK_BPFCORED
        setenv("BPFCORED", SOAK_BPFCORED, 0);
        setenv("BPF_OBJECTS_DIR", SOAK_OBJECTS_DIR, 0);
#endif
        path = harness_object_path("globals");
        object_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (object_fd < 0)
                tap_bail("cannot open %s: %m", path);
        if (valgrind) {
                /* valgrind's own log: pid-unique, removed at the end. */
                if (asprintf(&vg_log, "--log-file=/tmp/bpfcored-valgrind-%d.log", getpid()) < 0)
                        abort();
                memcpy(vg, valgrind_argv, sizeof(vg));
                vg[ELEMENTSOF(vg) - 2] = vg_log;
                d.wrapper = vg;
                /* valgrind 3.19 fails fsopen(), with which the daemon mounts its private tracefs: no attach.
                 */
                with_attach = false;
        }
        r = daemon_start(&d);
        if (!tap_is_int(r, 0, "private daemon started%s", valgrind ? " under valgrind" : ""))
                tap_bail("no daemon");
        if (bpfcore_connect(d.socket_path, &c) < 0)
                tap_bail("cannot connect");

        /* Warm-up: the plan cache, libbpf's and the allocator's first-use state. */
        for (unsigned i = 0; i < WARMUP; i++) {
                const char *step;

                if (cycle(c, object_fd, &step) < 0)
                        tap_bail("warm-up cycle %u failed at %s", i, step);
        }
        /* Measured with no connection open: the loop opens its own. */
        c = bpfcore_disconnect(c);
        start = sample();

        t0 = now_usec();
        for (unsigned i = 0; i < cycles; i++) {
                uint64_t t = now_usec(), dt;
                const char *step = "";

                /* Every tenth cycle on a new connection: accept and hang-up are part of the soak. */
                if (i % 10 == 0) {
                        c = bpfcore_disconnect(c);
                        if (bpfcore_connect(d.socket_path, &c) < 0) {
                                failed++;
                                break;
                        }
                }
                if (cycle(c, object_fd, &step) < 0) {
                        if (failed++ < 5)
                                tap_diag("cycle %u failed at %s", i, step);
                } else
                        done++;
                dt = now_usec() - t;
                slowest = MAX(slowest, dt);
                if (cycles >= 1000 && (i + 1) % (cycles / 10) == 0)
                        fprintf(stderr, "soak: %u of %u cycles, daemon %ld fds, RSS %ld KiB\n", i + 1,
                                cycles, harness_pid_fds(d.pid), harness_pid_rss_kib(d.pid));
        }
        elapsed = now_usec() - t0;
        bpfcore_disconnect(c);
        end = sample();

        tap_diag("%u cycles (load, %sunload) in %.1f s: %.0f cycles/s, slowest %.1f ms", cycles,
                 with_attach ? "attach, detach, " : "", (double) elapsed / 1e6,
                 elapsed ? cycles * 1e6 / (double) elapsed : 0.0, (double) slowest / 1e3);
        tap_diag("%-22s %10s %10s %8s", "", "start", "end", "delta");
        tap_diag("%-22s %10ld %10ld %+8ld", "daemon open fds", start.fds, end.fds, end.fds - start.fds);
        tap_diag("%-22s %10ld %10ld %+8ld", "daemon RSS (KiB)", start.rss, end.rss, end.rss - start.rss);
        tap_diag("%-22s %10ld %10ld %+8ld", "kernel programs (all)", start.progs, end.progs,
                 end.progs - start.progs);
        tap_diag("%-22s %10ld %10ld %+8ld", "kernel maps (all)", start.maps, end.maps,
                 end.maps - start.maps);
        tap_diag("%-22s %10ld %10ld %+8ld", "kernel links (all)", start.links, end.links,
                 end.links - start.links);

        tap_is_int(failed, 0, "%u of %u cycles succeeded, every reply checked", done, cycles);
        tap_is_int(end.fds, start.fds, "the daemon's open fds are back to %ld", start.fds);
        if (check_rss)
                /* Allocator slack, not growth per cycle: 10,000 cycles leaking 100 bytes each would pass 1
                 * MiB. */
                tap_ok(end.rss - start.rss < 1024, "the daemon's RSS is back within 1 MiB (%+ld KiB)",
                       end.rss - start.rss);
        else
                tap_skip(valgrind ? "under valgrind" : "sanitizer build", "RSS back where it started");
        tap_is_int(ids_alive(&progs, bpf_prog_get_fd_by_id), 0,
                   "none of the %zu programs it loaded is alive", progs.n);
        tap_is_int(ids_alive(&maps, bpf_map_get_fd_by_id), 0, "none of the %zu maps is alive", maps.n);
        tap_is_int(ids_alive(&links, bpf_link_get_fd_by_id), 0, "none of the %zu links is alive", links.n);

        r = daemon_stop(&d);
        if (valgrind) {
                size_t size;
                const char *p, *e;

                tap_is_int(r, 0, "the daemon exits 0 under valgrind");
                if (read_file(vg_log + strlen("--log-file="), &vg_text, &size) < 0)
                        vg_text = strdup("");
                /* The leak summary, or valgrind's word that nothing is left. */
                p = strstr(vg_text, "definitely lost:");
                tap_ok(p ? strncmp(p, "definitely lost: 0 bytes", 24) == 0
                         : strstr(vg_text, "All heap blocks were freed") != NULL,
                       "no definite leak after %u load/unload cycles", cycles + WARMUP);
                if ((p = strstr(vg_text, "LEAK SUMMARY")) || (p = strstr(vg_text, "HEAP SUMMARY")))
                        tap_diag("valgrind: %.*s",
                                 (int) ((e = strstr(p, "ERROR SUMMARY")) ? e - p + 80 : 600), p);
                /* valgrind's bpf() wrapper checks attr fields the command does not use: those reports are
                 * noise. */
                if (!p || !strstr(p, "ERROR SUMMARY: 0 errors"))
                        tap_diag("valgrind's other reports (bpf() attr fields it cannot know are unused) "
                                 "are in its log");
                unlink(vg_log + strlen("--log-file="));
        } else
                tap_is_int(r, 0, "the daemon exits cleanly");
        daemon_cleanup(&d);
        free(progs.v);
        free(maps.v);
        free(links.v);
        return tap_done();
}
