/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "btf-targets.h"
#include "log.h"
#include "macro.h"
#include "prog-batch.h"

typedef struct Request {
        /* What libbpf asked for. The pointers are libbpf's, valid until its last program is loaded,
         * which is when the batch runs. */
        enum bpf_prog_type type;
        const char *name;
        const char *license;
        const struct bpf_insn *insns;
        size_t insn_cnt;
        struct bpf_prog_load_opts opts;
        int stand_in; /* the fd libbpf holds for the program until the batch is loaded; libbpf's */
        int fd;       /* the program, or -errno */
} Request;

typedef struct Bind {
        size_t request;
        int map_fd;
        struct bpf_prog_bind_opts opts;
} Bind;

typedef struct Batch {
        struct {
                const char *name; /* libbpf's own string, which it passes again: compared as a pointer */
                enum bpf_prog_type type;
        } *expected;
        size_t n_expected;
        Request *requests; /* n_expected of them; the first n_taken taken */
        size_t n_taken;
        Bind *binds;
        size_t n_binds;
        int error; /* the batch failed; libbpf asking again for failed_name gets this */
        const char *failed_name;
        size_t *order;     /* requests by size, largest first: long verifications start first */
        size_t next, done; /* in order; under pool.lock while the batch runs */
        bool ran;          /* every program loaded and in its stand-in's place */
} Batch;

/*
 * Helper threads, started at the first batch and kept: each waits for a
 * batch, takes its next request, loads it. The loading thread takes
 * requests too and waits only for those a helper took, never for a helper
 * to wake up (a sleeping CPU of a VM can take a while): a small batch may
 * well be all loaded by the time one does.
 */
static struct {
        pthread_mutex_t lock;
        pthread_cond_t work; /* a batch came */
        pthread_cond_t done; /* a helper loaded one */
        Batch *active;
        unsigned helpers;
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER };

static unsigned threads_wanted; /* 0: one per CPU */
static Batch *current;
static unsigned batched_loads, batched_programs, batch_failures;
static __typeof__(&bpf_prog_load) real_load; /* libbpf's, looked up before the first batch runs */

void prog_batch_set_threads(unsigned n) {
        threads_wanted = n;
}

static unsigned threads(void) {
        cpu_set_t set;

        if (threads_wanted > 0)
                return threads_wanted;
        if (sched_getaffinity(0, sizeof(set), &set) < 0)
                return 1;
        return (unsigned) MAX(CPU_COUNT(&set), 1);
}

static Batch *batch_free(Batch *b) {
        if (!b)
                return NULL;
        for (size_t i = 0; i < b->n_taken; i++)
                if (b->requests[i].fd >= 0)
                        close(b->requests[i].fd);
        free(b->expected);
        free(b->requests);
        free(b->binds);
        free(b->order);
        free(b);
        return NULL;
}

static void batch_freep(Batch **b) {
        batch_free(*b);
}

void prog_batch_begin(const struct bpf_object *obj) {
        _cleanup_(batch_freep) Batch *b = NULL;
        struct bpf_program *prog;
        size_t n = 0;

        current = batch_free(current);
        if (threads() < 2)
                return;
        bpf_object__for_each_program(prog, obj) {
                /* libbpf decides at load which struct_ops programs it loads: no list to follow ahead. */
                if (bpf_program__type(prog) == BPF_PROG_TYPE_STRUCT_OPS)
                        return;
                if (!bpf_program__autoload(prog))
                        continue;
                /* A log of a load that succeeds is the sequential load's business. */
                if (bpf_program__log_level(prog) != 0)
                        return;
                n++;
        }
        if (n < 2)
                return;

        b = calloc(1, sizeof(Batch));
        if (!b)
                return;
        b->expected = calloc(n, sizeof(*b->expected));
        b->requests = calloc(n, sizeof(Request));
        b->order = calloc(n, sizeof(size_t));
        if (!b->expected || !b->requests || !b->order)
                return;
        bpf_object__for_each_program(prog, obj) {
                if (!bpf_program__autoload(prog))
                        continue;
                b->expected[b->n_expected].name = bpf_program__name(prog);
                b->expected[b->n_expected].type = bpf_program__type(prog);
                b->n_expected++;
        }
        current = TAKE_PTR(b);
}

static int stand_in(void) {
        static int source = -1;
        int fd;

        /* Not a program: if anything used a stand-in as one, it would fail loudly, not act on a wrong one.
         */
        if (source < 0) {
                source = eventfd(0, EFD_CLOEXEC);
                if (source < 0)
                        return -errno;
        }
        fd = fcntl(source, F_DUPFD_CLOEXEC, 3);
        return fd < 0 ? -errno : fd;
}

static void load_one(Request *r) {
        int fd = real_load(r->type, r->name, r->license, r->insns, r->insn_cnt, &r->opts);

        r->fd = fd < 0 ? -errno : fd;
}

/* With pool.lock held: loads the active batch's next request, if any. The batch stays until its last is
 * done. */
static bool take_one(void) {
        Batch *b = pool.active;
        Request *r;

        if (!b || b->next >= b->n_taken)
                return false;
        r = &b->requests[b->order[b->next++]];
        pthread_mutex_unlock(&pool.lock);
        load_one(r);
        pthread_mutex_lock(&pool.lock);
        b->done++;
        return true;
}

static void *helper_thread(void *userdata) {
        pthread_mutex_lock(&pool.lock);
        for (;;) {
                if (take_one())
                        pthread_cond_signal(&pool.done);
                else
                        pthread_cond_wait(&pool.work, &pool.lock);
        }
        return NULL;
}

static void pool_grow(unsigned helpers) {
        pthread_attr_t attr;
        int r;

        if (pool.helpers >= helpers || pthread_attr_init(&attr) != 0)
                return;
        /* A helper only calls bpf_prog_load(): the kernel does the work, on its own stack. */
        (void) pthread_attr_setstacksize(&attr, 256 * 1024);
        (void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        while (pool.helpers < helpers) {
                pthread_t t;

                r = pthread_create(&t, &attr, helper_thread, NULL);
                if (r != 0) {
                        /* The loading thread does the rest (TasksMax=, a seccomp filter without clone3). */
                        log_debug_errno(-r, "Cannot start a verifier helper thread: %m");
                        break;
                }
                pool.helpers++;
        }
        pthread_attr_destroy(&attr);
}

static int cmp_size(const void *x, const void *y, void *userdata) {
        const Request *requests = userdata;
        size_t a = requests[*(const size_t *) x].insn_cnt, b = requests[*(const size_t *) y].insn_cnt;

        return a < b ? 1 : a > b ? -1 : 0;
}

/* Loads every request, then puts each program in its stand-in's place. The first failure, in libbpf's
 * order, is the batch's. */
static int batch_run(Batch *b) {
        static void *own_load, *own_bind;
        __typeof__(&bpf_prog_bind_map) bind = libbpf_own(&own_bind, "bpf_prog_bind_map");
        unsigned wake;

        real_load = libbpf_own(&own_load, "bpf_prog_load");
        if (!real_load || !bind)
                return -ENOSYS;
        for (size_t i = 0; i < b->n_taken; i++)
                b->order[i] = i;
        qsort_r(b->order, b->n_taken, sizeof(size_t), cmp_size, b->requests);

        pthread_mutex_lock(&pool.lock);
        pool_grow(MIN(threads(), PROG_BATCH_THREADS_MAX) - 1);
        pool.active = b;
        /* As many helpers as there are programs besides the one this thread starts with. */
        wake = (unsigned) MIN((size_t) pool.helpers, b->n_taken - 1);
        for (unsigned i = 0; i < wake; i++)
                pthread_cond_signal(&pool.work);
        while (take_one())
                ;
        while (b->done < b->n_taken)
                pthread_cond_wait(&pool.done, &pool.lock);
        pool.active = NULL;
        pthread_mutex_unlock(&pool.lock);

        for (size_t i = 0; i < b->n_taken; i++)
                if (b->requests[i].fd < 0)
                        return b->requests[i].fd;
        for (size_t i = 0; i + 1 < b->n_taken; i++) {
                Request *r = &b->requests[i];

                if (dup3(r->fd, r->stand_in, O_CLOEXEC) < 0)
                        return -errno;
                r->fd = safe_close(r->fd);
        }
        for (size_t i = 0; i < b->n_binds; i++) {
                const Bind *x = &b->binds[i];

                /* As libbpf does: a map that cannot be bound is not a failed load. */
                if (bind(b->requests[x->request].stand_in, x->map_fd, &x->opts) < 0)
                        log_debug("Cannot bind map fd %d to program %s: %m", x->map_fd,
                                  b->requests[x->request].name);
        }
        b->ran = true;
        batched_loads++;
        batched_programs += (unsigned) b->n_taken;
        return 0;
}

/* Copies libbpf's options into ours, with our size: false if they hold more than ours can. */
static bool copy_opts(void *to, size_t to_sz, const void *from) {
        size_t from_sz = from ? *(const size_t *) from : 0;

        memset(to, 0, to_sz);
        if (from)
                memcpy(to, from, MIN(from_sz, to_sz));
        *(size_t *) to = to_sz;
        for (size_t i = to_sz; i < from_sz; i++)
                if (((const char *) from)[i] != 0)
                        return false;
        return true;
}

static int fail(Batch *b, const char *name, int error) {
        b->error = error;
        b->failed_name = name;
        errno = -error;
        return error;
}

static bool expected_anywhere(const Batch *b, const char *name) {
        for (size_t i = 0; i < b->n_expected; i++)
                if (name == b->expected[i].name)
                        return true;
        return false;
}

bool prog_batch_take(enum bpf_prog_type type, const char *name, const char *license,
                     const struct bpf_insn *insns, size_t insn_cnt, const struct bpf_prog_load_opts *opts,
                     int *ret) {
        Batch *b = current;
        Request *r;
        int k;

        /* libbpf passes each program's own name string; its feature probes pass literals. */
        if (!b || !name || !expected_anywhere(b, name))
                return false;
        if (b->error < 0) {
                /* libbpf asks again, with a log, for the program it was told failed. */
                if (name != b->failed_name)
                        return false;
                *ret = fail(b, name, b->error);
                return true;
        }
        if (b->n_taken >= b->n_expected || name != b->expected[b->n_taken].name ||
            type != b->expected[b->n_taken].type) {
                /* libbpf loading otherwise than foreseen: the sequential load is for that. */
                *ret = fail(b, name, -EAGAIN);
                return true;
        }
        /* libbpf 1.4 asks for a log only when it asks again; one that asked at once would lose it here. */
        if (opts && (opts->log_level != 0 || opts->log_buf)) {
                *ret = fail(b, name, -EAGAIN);
                return true;
        }

        r = &b->requests[b->n_taken];
        *r = (Request) {
                .type = type, .name = name, .license = license, .insns = insns, .insn_cnt = insn_cnt,
                .stand_in = -1, .fd = -1,
        };
        if (!copy_opts(&r->opts, sizeof(r->opts), opts)) {
                /* A newer libbpf's option this daemon was not built with. */
                *ret = fail(b, name, -EAGAIN);
                return true;
        }
        b->n_taken++;

        if (b->n_taken < b->n_expected) {
                k = stand_in();
                if (k < 0) {
                        b->n_taken--;
                        *ret = fail(b, name, k);
                        return true;
                }
                *ret = r->stand_in = k;
                return true;
        }

        k = batch_run(b);
        if (k < 0) {
                batch_failures++;
                *ret = fail(b, name, k);
                return true;
        }
        *ret = TAKE_FD(r->fd);
        return true;
}

bool prog_batch_bind(int prog_fd, int map_fd, const struct bpf_prog_bind_opts *opts, int *ret) {
        Batch *b = current;
        Bind *a;

        if (!b || prog_fd < 0)
                return false;
        for (size_t i = 0; i < b->n_taken; i++) {
                if (b->requests[i].stand_in != prog_fd)
                        continue;
                a = reallocarray(b->binds, b->n_binds + 1, sizeof(Bind));
                if (!a)
                        return false; /* bound to the stand-in, which fails; libbpf goes on without it */
                b->binds = a;
                a[b->n_binds] = (Bind) { .request = i, .map_fd = map_fd };
                if (!copy_opts(&a[b->n_binds].opts, sizeof(a->opts), opts))
                        return false; /* as above */
                b->n_binds++;
                *ret = 0;
                return true;
        }
        return false;
}

bool prog_batch_end(int load_result) {
        /* Stand-ins handed out for a batch that never ran are no programs, whatever libbpf made of them;
         * a load libbpf failed by itself before the batch ran failed for its own reason. */
        bool again = current &&
                     (current->error < 0 || (load_result >= 0 && current->n_taken > 0 && !current->ran));

        current = batch_free(current);
        return again;
}

unsigned prog_batch_loads(void) {
        return batched_loads;
}

unsigned prog_batch_programs(void) {
        return batched_programs;
}

unsigned prog_batch_failures(void) {
        return batch_failures;
}

unsigned prog_batch_helpers(void) {
        pthread_mutex_lock(&pool.lock);
        unsigned n = pool.helpers;
        pthread_mutex_unlock(&pool.lock);
        return n;
}
