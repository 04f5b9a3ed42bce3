/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Concurrency: N clients at once (default 64), each on its own connection,
 * loading, listing, dumping a map and unloading in a loop for a duration,
 * against a private daemon; one more client calls Status every 10 ms
 * meanwhile. Every reply is checked (ids, names, entries); errors are
 * counted. Prints p50/p99 latency per method as a table, never asserts a
 * time. TAP checks: zero errors, nothing left loaded.
 *
 *   build/tests/bench-concurrency [SECONDS [CLIENTS]]     (as root; default 60 s, 64 clients)
 */
#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "macro.h"
#include "tap.h"

enum { M_LOAD, M_LIST, M_DUMP, M_UNLOAD, M_STATUS, _M_MAX };
static const char *const method_names[_M_MAX] = {"Load", "List", "MapDump", "Unload", "Status (prober)"};

typedef struct Samples {
        uint32_t *us;
        size_t n, alloc;
} Samples;

typedef struct Client {
        pthread_t thread;
        unsigned index;
        Samples lat[_M_MAX];
        unsigned errors;
        char first_error[256];
        /* Kernel program ids this client loaded: all must be gone at the end. */
        uint32_t *progs;
        size_t n_progs;
} Client;

static TestDaemon d;
static atomic_bool stop;
static atomic_uint loads_in_flight;
static Samples status_during_loads;
static const char *object_path;

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void add(Samples *s, uint64_t us) {
        if (s->n == s->alloc) {
                s->alloc = s->alloc ? s->alloc * 2 : 1024;
                s->us = realloc(s->us, s->alloc * sizeof(uint32_t));
                if (!s->us)
                        abort();
        }
        s->us[s->n++] = (uint32_t) MIN(us, UINT32_MAX);
}

static void fail(Client *c, const char *what, const BpfcoreReply *r) {
        if (c->errors++ == 0)
                snprintf(c->first_error, sizeof(c->first_error), "%s: %s %s", what,
                         r && r->error ? r->error : "",
                         r && r->parameters ? json_object_to_json_string(r->parameters) : "(no reply)");
}

static int timed_call(Client *c, BpfcoreClient *conn, int m, const char *method, json_object *params,
                      const int *fds, size_t n_fds, BpfcoreReply *r) {
        uint64_t t0 = now_usec();
        int rc = bpfcore_call(conn, method, params, fds, n_fds, r);

        add(&c->lat[m], now_usec() - t0);
        return rc;
}

static void *client_run(void *userdata) {
        Client *c = userdata;
        BpfcoreClient *conn = NULL;
        _cleanup_close_ int fd = open(object_path, O_RDONLY | O_CLOEXEC);
        char name[32];

        snprintf(name, sizeof(name), "client%u", c->index);
        if (fd < 0 || bpfcore_connect(d.socket_path, &conn) < 0) {
                fail(c, "connect", NULL);
                return NULL;
        }
        while (!stop) {
                _cleanup_(bpfcore_reply_done) BpfcoreReply load = {}, list = {}, dump = {}, unload = {};
                json_object *p = json_object_new_object(), *objects, *maps, *prog, *entries;
                int64_t id, map_id = -1;
                bool listed = false;

                /* Load, named for this client: the reply names it and its program. */
                json_object_object_add(p, "fd", json_object_new_int(0));
                json_object_object_add(p, "name", json_object_new_string(name));
                loads_in_flight++;
                if (timed_call(c, conn, M_LOAD, "io.bpfcored.Load", p, &fd, 1, &load) < 0 || load.error) {
                        loads_in_flight--;
                        json_object_put(p);
                        fail(c, "Load", &load);
                        continue;
                }
                loads_in_flight--;
                json_object_put(p);
                id = object_int(&load, "id");
                prog = array_find_name(object_get(&load, "programs"), "count_getpid");
                maps = object_get(&load, "maps");
                if (id <= 0 ||
                    strcmp(json_str(json_object_object_get(load.parameters, "object"), "name"), name) != 0 ||
                    !prog || json_int(prog, "id") <= 0) {
                        fail(c, "Load reply", &load);
                        continue;
                }
                c->progs = realloc(c->progs, (c->n_progs + 1) * sizeof(uint32_t));
                c->progs[c->n_progs++] = (uint32_t) json_int(prog, "id");
                for (size_t i = 0; maps && i < json_object_array_length(maps); i++)
                        if (strcmp(json_str(json_object_array_get_idx(maps, i), "name"), "settings") == 0)
                                map_id = json_int(json_object_array_get_idx(maps, i), "id");

                /* List: the object just loaded is there, under its id and name. */
                if (timed_call(c, conn, M_LIST, "io.bpfcored.List", NULL, NULL, 0, &list) < 0 ||
                    list.error || !json_object_object_get_ex(list.parameters, "objects", &objects))
                        fail(c, "List", &list);
                else {
                        for (size_t i = 0; i < json_object_array_length(objects) && !listed; i++) {
                                json_object *o = json_object_array_get_idx(objects, i);
                                listed = json_int(o, "id") == id && strcmp(json_str(o, "name"), name) == 0;
                        }
                        if (!listed)
                                fail(c, "List without the object", &list);
                }

                /* MapDump of its settings map: one entry per max_entries of an array. */
                p = json_object_new_object();
                json_object_object_add(p, "map", json_object_new_int64(map_id));
                if (map_id <= 0 ||
                    timed_call(c, conn, M_DUMP, "io.bpfcored.MapDump", p, NULL, 0, &dump) < 0 ||
                    dump.error || !json_object_object_get_ex(dump.parameters, "entries", &entries) ||
                    json_object_array_length(entries) < 1)
                        fail(c, "MapDump", &dump);
                json_object_put(p);

                p = json_object_new_object();
                json_object_object_add(p, "id", json_object_new_int64(id));
                if (timed_call(c, conn, M_UNLOAD, "io.bpfcored.Unload", p, NULL, 0, &unload) < 0 ||
                    unload.error)
                        fail(c, "Unload", &unload);
                json_object_put(p);
        }
        bpfcore_disconnect(conn);
        return NULL;
}

static void *prober_run(void *userdata) {
        Client *c = userdata;
        BpfcoreClient *conn = NULL;

        if (bpfcore_connect(d.socket_path, &conn) < 0) {
                fail(c, "connect", NULL);
                return NULL;
        }
        while (!stop) {
                _cleanup_(bpfcore_reply_done) BpfcoreReply r = {};
                bool loading = loads_in_flight > 0;
                uint64_t t0 = now_usec(), dt;

                if (bpfcore_call(conn, "io.bpfcored.Status", NULL, NULL, 0, &r) < 0 || r.error ||
                    json_int(r.parameters, "uptime_us") < 0)
                        fail(c, "Status", &r);
                dt = now_usec() - t0;
                add(&c->lat[M_STATUS], dt);
                if (loading)
                        add(&status_during_loads, dt);
                usleep(10000);
        }
        bpfcore_disconnect(conn);
        return NULL;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

static double pct(Samples *s, double p) {
        if (s->n == 0)
                return 0;
        qsort(s->us, s->n, sizeof(uint32_t), cmp_u32);
        return s->us[MIN(s->n - 1, (size_t) (p * (double) s->n))] / 1000.0;
}

int main(int argc, char **argv) {
        unsigned seconds = argc > 1 ? (unsigned) strtoul(argv[1], NULL, 10) : 60;
        unsigned n_clients = argc > 2 ? (unsigned) strtoul(argv[2], NULL, 10) : 64, errors = 0;
        _cleanup_free_ char *path = NULL;
        Client *clients, prober = {};
        Samples all[_M_MAX] = {};
        uint32_t *before = NULL;
        size_t n_before = 0, alive = 0, loaded = 0;

#ifdef BENCH_BPFCORED
        setenv("BPFCORED", BENCH_BPFCORED, 0);
        setenv("BPF_OBJECTS_DIR", BENCH_OBJECTS_DIR, 0);
#endif
        if (n_clients < 1 || n_clients > 1000)
                tap_bail("CLIENTS must be 1 to 1000");
        path = harness_object_path("globals");
        object_path = path;
        kernel_prog_ids(&before, &n_before);
        if (!tap_is_int(daemon_start(&d), 0, "private daemon started"))
                tap_bail("no daemon");

        clients = calloc(n_clients, sizeof(Client));
        pthread_create(&prober.thread, NULL, prober_run, &prober);
        for (unsigned i = 0; i < n_clients; i++) {
                clients[i].index = i;
                pthread_create(&clients[i].thread, NULL, client_run, &clients[i]);
        }
        sleep(seconds);
        stop = true;
        for (unsigned i = 0; i < n_clients; i++)
                pthread_join(clients[i].thread, NULL);
        pthread_join(prober.thread, NULL);

        for (unsigned i = 0; i < n_clients; i++) {
                Client *c = &clients[i];

                if (c->errors && errors == 0)
                        tap_diag("client %u: %u errors, the first: %s", i, c->errors, c->first_error);
                errors += c->errors;
                for (int m = 0; m < _M_MAX; m++)
                        for (size_t k = 0; k < c->lat[m].n; k++)
                                add(&all[m], c->lat[m].us[k]);
                for (size_t k = 0; k < c->n_progs; k++)
                        alive += !kernel_prog_gone(c->progs[k]);
                loaded += c->n_progs;
        }
        for (size_t k = 0; k < prober.lat[M_STATUS].n; k++)
                add(&all[M_STATUS], prober.lat[M_STATUS].us[k]);
        if (prober.errors)
                tap_diag("Status prober: %u errors, the first: %s", prober.errors, prober.first_error);
        errors += prober.errors;

        tap_diag("%u clients for %u s against one daemon (load globals.bpf.o, List, MapDump, Unload; a "
                 "Status every 10 ms)",
                 n_clients, seconds);
        tap_diag("%-26s %8s %8s %8s %8s %8s", "method", "calls", "per s", "p50 ms", "p99 ms", "max ms");
        for (int m = 0; m < _M_MAX; m++)
                tap_diag("%-26s %8zu %8.1f %8.2f %8.2f %8.2f", method_names[m], all[m].n,
                         (double) all[m].n / seconds, pct(&all[m], 0.50), pct(&all[m], 0.99),
                         all[m].n ? pct(&all[m], 1.0) : 0.0);
        tap_diag("%-26s %8zu %8s %8.2f %8.2f %8.2f", "Status while loads run", status_during_loads.n, "",
                 pct(&status_during_loads, 0.50), pct(&status_during_loads, 0.99),
                 status_during_loads.n ? pct(&status_during_loads, 1.0) : 0.0);
        tap_diag("Status target: median <= 50 ms while loads run (a figure, not an assertion)");

        tap_ok(all[M_LOAD].n > 0 && all[M_UNLOAD].n > 0, "%zu loads and %zu unloads done", all[M_LOAD].n,
               all[M_UNLOAD].n);
        tap_is_int(errors, 0, "no error in %zu calls, every reply checked",
                   all[M_LOAD].n + all[M_LIST].n + all[M_DUMP].n + all[M_UNLOAD].n + all[M_STATUS].n);
        tap_is_int(alive, 0, "none of the %zu programs the clients loaded is alive", loaded);
        tap_is_int(daemon_stop(&d), 0, "the daemon exits cleanly");
        daemon_cleanup(&d);
        for (unsigned i = 0; i < n_clients; i++) {
                for (int m = 0; m < _M_MAX; m++)
                        free(clients[i].lat[m].us);
                free(clients[i].progs);
        }
        for (int m = 0; m < _M_MAX; m++) {
                free(all[m].us);
                free(prober.lat[m].us);
        }
        free(status_during_loads.us);
        free(clients);
        free(before);
        return tap_done();
}
