/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Load latency and memory, as a table (never a timed assertion):
 *   (a) plain libbpf open+load in one process: what each agent does today (warm: the same process loads
 *       again and again, so libbpf's kernel feature probes are cached after the first)
 *  (a1) the same in a fresh process each time, as an agent starting up
 *   (b) libbpf with a ready minimal BTF (bpftool gen min_core_btf): the floor
 *   (c) a bpfcored Load over the socket, end to end from the client
 * plus (c) against a daemon that verifies one program at a time (--verifier-threads 1), kernel BTF parse
 * time, the daemon's cache start-up and its RSS.
 *
 *   build/tests/bench-load [ITERATIONS]      (as root; state files on /dev/shm, as /run is tmpfs in production)
 */
#include <bpf/btf.h>
#include <bpf/libbpf.h>
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

static TestDaemon d;
static BpfcoreClient *client; /* one connection, as an agent keeps */

static const char *const one_thread[] = { "--verifier-threads", "1", NULL };

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, size_t n) {
        qsort(v, n, sizeof(*v), cmp_u64);
        return n ? v[n / 2] : 0;
}

static int silent(enum libbpf_print_level level, const char *fmt, va_list ap) {
        return 0;
}

/* open + load + close of one object by plain libbpf; the time of open + load. */
static int64_t libbpf_load(const char *path, const char *btf_path) {
        /* Maps pinned by name go under our own bpffs directory, never /sys/fs/bpf/<name>. */
        LIBBPF_OPTS(bpf_object_open_opts, opts, .btf_custom_path = btf_path, .pin_root_path = d.bpffs_root);
        struct bpf_object *obj;
        uint64_t t0 = now_usec(), t;
        int r;

        obj = bpf_object__open_file(path, &opts);
        if (!obj)
                return -errno;
        r = bpf_object__load(obj);
        t = now_usec() - t0;
        bpf_object__unpin_maps(obj, NULL);
        bpf_object__close(obj);
        return r < 0 ? r : (int64_t) t;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

/* Objects of dozens of programs and hundreds of relocations, as agents ship them. */
static bool real_world_sized(const char *name) {
        return strcmp(name, "many_core") == 0 || strcmp(name, "netmon") == 0 || strcmp(name, "secmon") == 0;
}

enum { ANY_SIZE, SMALL, REAL_WORLD };

static double median_of(double *v, size_t n) {
        qsort(v, n, sizeof(double), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The medians of a/c, a1/c and c/b over the objects of one group. */
static void print_median_row(const char *label, const char *const *objects, size_t n_objects, double (*ratios)[3],
                             const bool *measured, int group) {
        double v[3][64];
        size_t n = 0;

        for (size_t k = 0; k < n_objects && n < 64; k++) {
                if (!measured[k] || (group == SMALL && real_world_sized(objects[k])) ||
                    (group == REAL_WORLD && !real_world_sized(objects[k])))
                        continue;
                for (int i = 0; i < 3; i++)
                        v[i][n] = ratios[k][i];
                n++;
        }
        if (n == 0)
                return;
        printf("%-10s %5s %6s %12s %12s %12s %12s %8.2f %8.2f %8.2f\n", label, "", "", "", "", "", "",
               median_of(v[0], n), median_of(v[1], n), median_of(v[2], n));
}

/* Where (c) goes, from the Load reply's timings: the daemon's stages and the rest (IPC, state file, reply). */
enum { ST_RECEIVE, ST_PLAN, ST_OPEN, ST_LOAD, ST_PIN, ST_OUTSIDE, _ST_MAX };
static const char *const stage_names[_ST_MAX] = { "receive", "plan", "open", "load", "pin", "outside" };

static int64_t daemon_load(const char *path, int64_t *ret_relos, int64_t *ret_progs, uint64_t stages[_ST_MAX]) {
        BpfcoreReply r = {};
        json_object *p = json_object_new_object(), *u;
        uint64_t t0 = now_usec(), t;
        int fd, rc;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        json_object_object_add(p, "fd", json_object_new_int(0));
        rc = bpfcore_call(client, "io.bpfcored.Load", p, &fd, 1, &r);
        t = now_usec() - t0;
        close(fd);
        json_object_put(p);
        if (rc < 0 || r.error) {
                fprintf(stderr, "daemon load of %s failed: %s\n", path, r.error ?: strerror(-rc));
                bpfcore_reply_done(&r);
                return -EIO;
        }
        {
                json_object *obj = NULL, *tm = NULL;

                if (json_object_object_get_ex(r.parameters, "object", &obj) &&
                    json_object_object_get_ex(obj, "timings_us", &tm)) {
                        for (int i = 0; i < ST_OUTSIDE; i++)
                                stages[i] = (uint64_t) json_int(tm, stage_names[i]);
                        stages[ST_OUTSIDE] = t - MIN(t, (uint64_t) json_int(tm, "total"));
                }
        }
        *ret_relos = object_get(&r, "relocations") ? (int64_t) json_object_array_length(object_get(&r, "relocations")) : 0;
        *ret_progs = object_get(&r, "programs") ? (int64_t) json_object_array_length(object_get(&r, "programs")) : 0;
        u = json_object_new_object();
        json_object_object_add(u, "id", json_object_new_int64(object_int(&r, "id")));
        bpfcore_reply_done(&r);
        bpfcore_call(client, "io.bpfcored.Unload", u, NULL, 0, &r);
        json_object_put(u);
        bpfcore_reply_done(&r);
        return (int64_t) t;
}

/*
 * (a1): the same in a fresh process, as an agent starting up does it: libbpf's kernel feature probes are
 * not cached yet there (in-process they are after the first load). Timed inside the new process, from
 * before open to after load, so exec and dynamic linking are not counted.
 */
static int one_load(const char *path) {
        LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = getenv("BENCH_PIN_ROOT"));
        struct bpf_object *obj;
        uint64_t t0 = now_usec(), t;
        int r;

        libbpf_set_print(silent);
        obj = bpf_object__open_file(path, &opts);
        r = obj ? bpf_object__load(obj) : -errno;
        t = now_usec() - t0;
        if (obj)
                bpf_object__unpin_maps(obj, NULL);
        bpf_object__close(obj);
        if (r < 0)
                return 1;
        printf("%llu\n", (unsigned long long) t);
        return 0;
}

static int64_t fresh_load(const char *self, const char *path) {
        char cmd[2048], line[64] = "";
        FILE *f;

        snprintf(cmd, sizeof(cmd), "BENCH_PIN_ROOT='%s' '%s' --one-load '%s'", d.bpffs_root, self, path);
        f = popen(cmd, "r");
        if (!f)
                return -errno;
        if (!fgets(line, sizeof(line), f))
                line[0] = 0;
        if (pclose(f) != 0 || !line[0])
                return -EIO;
        return strtoll(line, NULL, 10);
}

/* btf__parse of kernel BTF in a fresh process: what every agent pays at its start. */
static int64_t cold_parse(void) {
        int64_t t = -1;
        int fds[2];
        pid_t pid;

        if (pipe(fds) < 0)
                return -1;
        pid = fork();
        if (pid == 0) {
                uint64_t t0 = now_usec();
                struct btf *b = btf__parse("/sys/kernel/btf/vmlinux", NULL);
                int64_t v = b ? (int64_t) (now_usec() - t0) : -1;

                (void) !write(fds[1], &v, sizeof(v));
                _exit(0);
        }
        close(fds[1]);
        if (pid > 0 && read(fds[0], &t, sizeof(t)) != sizeof(t))
                t = -1;
        close(fds[0]);
        if (pid > 0)
                waitpid(pid, NULL, 0);
        return t;
}

int main(int argc, char **argv) {
        static const char *const objects[] = { "tp_core", "globals", "xdp_pass", "pinned", "many_core",
                                                 "netmon", "secmon", "tp_btf", "ksyms" };
        int iterations;
        uint64_t parse[64], startup[64];
        BpfcoreReply status = {};
        json_object *cache = NULL;
        int n_parse = 0, n_startup = 0;

        if (argc == 3 && strcmp(argv[1], "--one-load") == 0)
                return one_load(argv[2]);
        iterations = argc > 1 ? atoi(argv[1]) : 21;
        if (iterations < 1 || iterations > 1000)
                iterations = 21;
        libbpf_set_print(silent);
        /* State files on tmpfs, as /run is under systemd: their fsyncs cost nothing there. */
        setenv("BPFCORED_TEST_STATE_ROOT", "/dev/shm", 0);
        if (!getenv("BPFCORED")) {
                setenv("BPFCORED", BENCH_BPFCORED, 0);
                setenv("BPF_OBJECTS_DIR", BENCH_OBJECTS_DIR, 0);
        }
        if (daemon_start(&d) < 0) {
                fprintf(stderr, "cannot start bpfcored\n");
                return 1;
        }

        if (bpfcore_connect(d.socket_path, &client) < 0) {
                fprintf(stderr, "cannot connect to bpfcored\n");
                return 1;
        }

        printf("%d iterations per cell, medians in microseconds\n\n", iterations);
        printf("%-10s %5s %6s %12s %12s %12s %12s %8s %8s %8s\n", "object", "progs", "relos", "(a) libbpf",
               "(a1) fresh", "(b) min-btf", "(c) daemon", "a/c", "a1/c", "c/b");
        uint64_t stage_medians[ELEMENTSOF(objects)][_ST_MAX] = {}, back_to_back[ELEMENTSOF(objects)][2] = {};
        double ratios[ELEMENTSOF(objects)][3]; /* a/c, a1/c, c/b of each object */
        bool measured[ELEMENTSOF(objects)] = {};
        int64_t n_progs[ELEMENTSOF(objects)] = {};

        for (size_t k = 0; k < ELEMENTSOF(objects); k++) {
                uint64_t *stages = calloc((size_t) iterations * _ST_MAX, 8), *column = calloc((size_t) iterations, 8);
                _cleanup_free_ char *path = harness_object_path(objects[k]);
                char min_btf[256], cmd[1024];
                uint64_t *a = calloc((size_t) iterations, 8), *a1 = calloc((size_t) iterations, 8),
                         *b = calloc((size_t) iterations, 8), *c = calloc((size_t) iterations, 8);
                int64_t relos = 0, progs = 0, v;
                bool ok = true;

                snprintf(min_btf, sizeof(min_btf), "%s/%s.min.btf", d.tmpdir, objects[k]);
                snprintf(cmd, sizeof(cmd), "bpftool gen min_core_btf /sys/kernel/btf/vmlinux %s %s >/dev/null 2>&1",
                         min_btf, path);
                if (system(cmd) != 0) {
                        fprintf(stderr, "bpftool gen min_core_btf failed for %s\n", objects[k]);
                        ok = false;
                }
                /* Interleaved, so drift of a shared machine hits all three alike. */
                for (int i = 0; ok && i < iterations; i++) {
                        ok = (v = libbpf_load(path, NULL)) >= 0;
                        a[i] = (uint64_t) v;
                        ok = ok && (v = fresh_load(argv[0], path)) >= 0;
                        a1[i] = (uint64_t) v;
                        ok = ok && (v = libbpf_load(path, min_btf)) >= 0;
                        b[i] = (uint64_t) v;
                        ok = ok && (v = daemon_load(path, &relos, &progs, stages + (size_t) i * _ST_MAX)) >= 0;
                        c[i] = (uint64_t) v;
                }
                if (ok) {
                        uint64_t ma = median(a, (size_t) iterations), ma1 = median(a1, (size_t) iterations),
                                 mb = median(b, (size_t) iterations), mc = median(c, (size_t) iterations);
                        printf("%-10s %5lld %6lld %12llu %12llu %12llu %12llu %8.2f %8.2f %8.2f\n", objects[k],
                               (long long) progs, (long long) relos, (unsigned long long) ma, (unsigned long long) ma1,
                               (unsigned long long) mb, (unsigned long long) mc, (double) ma / (double) mc,
                               (double) ma1 / (double) mc, (double) mc / (double) mb);
                        n_progs[k] = progs;
                        ratios[k][0] = (double) ma / (double) mc;
                        ratios[k][1] = (double) ma1 / (double) mc;
                        ratios[k][2] = (double) mc / (double) mb;
                        measured[k] = true;
                        for (int st = 0; st < _ST_MAX; st++) {
                                for (int i = 0; i < iterations; i++)
                                        column[i] = stages[(size_t) i * _ST_MAX + (size_t) st];
                                stage_medians[k][st] = median(column, (size_t) iterations);
                        }
                        /* Back to back: each kind of load repeated, as a daemon serving a stream of loads
                         * (and libbpf in a loading process) runs with its caches warm. */
                        for (int i = 0; ok && i < iterations; i++)
                                ok = (v = libbpf_load(path, min_btf)) >= 0 && (b[i] = (uint64_t) v, true);
                        for (int i = 0; ok && i < iterations; i++)
                                ok = (v = daemon_load(path, &relos, &progs, stages)) >= 0 && (c[i] = (uint64_t) v, true);
                        if (ok) {
                                back_to_back[k][0] = median(b, (size_t) iterations);
                                back_to_back[k][1] = median(c, (size_t) iterations);
                        }
                } else
                        printf("%-10s failed\n", objects[k]);
                free(stages);
                free(column);
                unlink(min_btf);
                free(a);
                free(a1);
                free(b);
                free(c);
        }

        /* The test objects are small; the real-world-sized ones are dominated by the verifier's own time. */
        print_median_row("median", objects, ELEMENTSOF(objects), ratios, measured, ANY_SIZE);
        print_median_row("  small", objects, ELEMENTSOF(objects), ratios, measured, SMALL);
        print_median_row("  large", objects, ELEMENTSOF(objects), ratios, measured, REAL_WORLD);

        printf("\n(c) by stage, from the Load reply's timings (medians; outside = IPC, state file, reply):\n%-10s", "object");
        for (int st = 0; st < _ST_MAX; st++)
                printf(" %9s", stage_names[st]);
        printf("\n");
        for (size_t k = 0; k < ELEMENTSOF(objects); k++) {
                printf("%-10s", objects[k]);
                for (int st = 0; st < _ST_MAX; st++)
                        printf(" %9llu", (unsigned long long) stage_medians[k][st]);
                printf("\n");
        }

        printf("\nBack to back (%d of one kind in a row, caches warm; medians):\n%-10s %12s %12s %8s\n", iterations,
               "object", "(b) min-btf", "(c) daemon", "c/b");
        for (size_t k = 0; k < ELEMENTSOF(objects); k++)
                if (back_to_back[k][0] > 0)
                        printf("%-10s %12llu %12llu %8.2f\n", objects[k], (unsigned long long) back_to_back[k][0],
                               (unsigned long long) back_to_back[k][1],
                               (double) back_to_back[k][1] / (double) back_to_back[k][0]);

        /* Interleaved with a second daemon that verifies one program after the other. */
        {
                TestDaemon solo = { .options = one_thread };
                BpfcoreClient *side_by_side = client, *one = NULL;

                if (daemon_start(&solo) < 0 || bpfcore_connect(solo.socket_path, &one) < 0)
                        fprintf(stderr, "cannot start bpfcored --verifier-threads 1\n");
                else {
                        printf("\nPrograms verified side by side (default: one thread per CPU) or one after the other "
                               "(--verifier-threads 1),\ninterleaved, medians:\n%-10s %5s %12s %12s %8s\n",
                               "object", "progs", "(c) daemon", "(c1) 1 thread", "c1/c");
                        for (size_t k = 0; k < ELEMENTSOF(objects); k++) {
                                _cleanup_free_ char *path = harness_object_path(objects[k]);
                                uint64_t *c = calloc((size_t) iterations, 8), *c1 = calloc((size_t) iterations, 8),
                                         stages[_ST_MAX];
                                int64_t relos, progs, v = 0, v1 = 0;
                                bool ok = n_progs[k] > 1;

                                for (int i = 0; ok && i < iterations; i++) {
                                        client = one;
                                        ok = (v1 = daemon_load(path, &relos, &progs, stages)) >= 0;
                                        client = side_by_side;
                                        ok = ok && (v = daemon_load(path, &relos, &progs, stages)) >= 0;
                                        c1[i] = (uint64_t) v1;
                                        c[i] = (uint64_t) v;
                                }
                                if (ok) {
                                        uint64_t mc = median(c, (size_t) iterations),
                                                 mc1 = median(c1, (size_t) iterations);

                                        printf("%-10s %5lld %12llu %12llu %8.2f\n", objects[k], (long long) n_progs[k],
                                               (unsigned long long) mc, (unsigned long long) mc1,
                                               (double) mc1 / (double) mc);
                                }
                                free(c);
                                free(c1);
                        }
                }
                client = side_by_side;
                bpfcore_disconnect(one);
                daemon_cleanup(&solo);
        }

        bpfcore_call(client, "io.bpfcored.Status", NULL, NULL, 0, &status);
        json_object_object_get_ex(status.parameters, "btf_cache", &cache);
        printf("\ndaemon RSS after the runs: %ld KiB; BTF cache: %lld bytes, %lld indexed names\n",
               harness_pid_rss_kib(d.pid),
               (long long) json_int(cache, "memory_bytes"), (long long) json_int(cache, "indexed_types"));
        {
                json_object *c = NULL;

                json_object_object_get_ex(status.parameters, "counters", &c);
                printf("daemon loads: %lld, planned against a minimal BTF %lld, fallbacks to the whole cached BTF %lld;\n"
                       "  kernel BTF served from the cache %lld times, kfunc/ksym names from its index %lld, opened ahead "
                       "%lld,\n  libbpf's loading probe skipped %lld, object BTF reused %lld, known files (not read again) "
                       "%lld,\n  programs verified side by side %lld in %lld loads, batches failed %lld\n",
                       (long long) json_int(c, "loads"), (long long) json_int(c, "planned_loads"),
                       (long long) json_int(c, "fallback_loads"), (long long) json_int(c, "kernel_btf_served"),
                       (long long) json_int(c, "kernel_btf_lookups"), (long long) json_int(c, "opened_ahead"),
                       (long long) json_int(c, "load_probes_skipped"), (long long) json_int(c, "object_btf_reused"),
                       (long long) json_int(c, "known_files"), (long long) json_int(c, "batched_programs"),
                       (long long) json_int(c, "batched_loads"), (long long) json_int(c, "batch_failures"));
        }
        /* Start-up against libbpf's parse, in turns (as the loads above): one start is too noisy a sample. */
        bpfcore_disconnect(client);
        client = NULL;
        for (int i = 0; i < 11; i++) {
                BpfcoreReply st = {};
                json_object *c = NULL;
                int64_t v = cold_parse();

                if (v >= 0)
                        parse[n_parse++] = (uint64_t) v;
                startup[n_startup] = 0;
                if (daemon_stop(&d) == 0 && daemon_start(&d) == 0 && bpfcore_connect(d.socket_path, &client) >= 0 &&
                    bpfcore_call(client, "io.bpfcored.Status", NULL, NULL, 0, &st) >= 0 &&
                    json_object_object_get_ex(st.parameters, "btf_cache", &c))
                        startup[n_startup++] = (uint64_t) json_int(c, "startup_us");
                bpfcore_reply_done(&st);
                bpfcore_disconnect(client);
                client = NULL;
        }
        printf("kernel BTF parse by libbpf in a fresh process (btf__parse, median of %d): %llu us\n", n_parse,
               (unsigned long long) median(parse, (size_t) n_parse));
        printf("daemon BTF cache start-up (parse + index, median of %d starts): %llu us (%.2fx one libbpf parse)\n",
               n_startup, (unsigned long long) median(startup, (size_t) n_startup),
               (double) median(startup, (size_t) n_startup) / (double) median(parse, (size_t) n_parse));
        bpfcore_reply_done(&status);
        daemon_cleanup(&d);
        return 0;
}
