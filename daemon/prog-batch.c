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
                const char *name;
                enum bpf_prog_type type;
        } *expected;
        size_t n_expected;
        Request *requests; /* n_expected of them; the first n_taken taken */
        size_t n_taken;
        Bind *binds;
        size_t n_binds;
        int error;               /* the batch failed; libbpf asking again for failed_name gets this */
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
static __thread Batch *current;
static unsigned batched_loads, batched_programs, batch_failures;

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

static void batch_free(Batch *b) {
        if (!b)
                return;
        for (size_t i = 0; i < b->n_taken; i++)
                if (b->requests[i].fd >= 0)
                        close(b->requests[i].fd);
        free(b->expected);
        free(b->requests);
        free(b->binds);
        free(b->order);
        free(b);
}

void prog_batch_begin(const struct bpf_object *obj) {
        _cleanup_free_ Batch *b = NULL;
        struct bpf_program *prog;
        size_t n = 0;

        batch_free(current);
        current = NULL;
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
        if (!b->expected || !b->requests || !b->order) {
                free(b->expected);
                free(b->requests);
                free(b->order);
                return;
        }
        bpf_object__for_each_program(prog, obj)
                if (bpf_program__autoload(prog)) {
                        b->expected[b->n_expected].name = bpf_program__name(prog);
                        b->expected[b->n_expected].type = bpf_program__type(prog);
                        b->n_expected++;
                }
        current = TAKE_PTR(b);
}

static int stand_in(void) {
        static int source = -1;
        int fd;

        /* Not a program: if anything used a stand-in as one, it would fail loudly, not act on a wrong one. */
        if (source < 0) {
                source = eventfd(0, EFD_CLOEXEC);
                if (source < 0)
                        return -errno;
        }
        fd = fcntl(source, F_DUPFD_CLOEXEC, 3);
        return fd < 0 ? -errno : fd;
}

static __typeof__(&bpf_prog_load) real_load; /* libbpf's, looked up by the loading thread */

static void load_one(Request *r) {
        int fd = real_load(r->type, r->name, r->license, r->insns, r->insn_cnt, &r->opts);

        r->fd = fd < 0 ? -errno : fd;
}

/* With pool.lock held: loads the active batch's next request, if any. The batch stays until its last is done. */
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

        if (pthread_attr_init(&attr) != 0)
                return;
        /* A helper only calls bpf_prog_load(): the kernel does the work, on its own stack. */
        (void) pthread_attr_setstacksize(&attr, 256 * 1024);
        (void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        while (pool.helpers < helpers) {
                pthread_t t;

                if (pthread_create(&t, &attr, helper_thread, NULL) != 0)
                        break;
                pool.helpers++;
        }
        pthread_attr_destroy(&attr);
}

static bool fail(Batch *b, const char *name, int error, int *ret) {
        b->error = *ret = error;
        b->failed_name = name;
        errno = -error;
        return true;
}

static int cmp_size(const void *x, const void *y, void *userdata) {
        const Request *requests = userdata;
        size_t a = requests[*(const size_t *) x].insn_cnt, b = requests[*(const size_t *) y].insn_cnt;

        return a < b ? 1 : a > b ? -1 : 0;
}

/* Loads every request, then puts each program in its stand-in's place. The first failure, in libbpf's
 * order, is the batch's. */
static int batch_run(Batch *b) {
        static void *own_bind;
        __typeof__(&bpf_prog_bind_map) bind = libbpf_own(&own_bind, "bpf_prog_bind_map");

        static void *own_load;

        real_load = libbpf_own(&own_load, "bpf_prog_load");
        if (!real_load)
                return -ENOSYS;
        for (size_t i = 0; i < b->n_taken; i++)
                b->order[i] = i;
        qsort_r(b->order, b->n_taken, sizeof(size_t), cmp_size, b->requests);
        pthread_mutex_lock(&pool.lock);
        if (pool.active) {
                /* Another thread's batch has the helpers: this one loads its own. */
                pthread_mutex_unlock(&pool.lock);
                for (size_t i = 0; i < b->n_taken; i++)
                        load_one(&b->requests[i]);
        } else {
                pool_grow(MIN(threads(), PROG_BATCH_THREADS_MAX) - 1);
                pool.active = b;
                pthread_cond_broadcast(&pool.work);
                while (take_one())
                        ;
                while (b->done < b->n_taken)
                        pthread_cond_wait(&pool.done, &pool.lock);
                pool.active = NULL;
                pthread_mutex_unlock(&pool.lock);
        }

        for (size_t i = 0; i < b->n_taken; i++)
                if (b->requests[i].fd < 0)
                        return b->requests[i].fd;
        for (size_t i = 0; i + 1 < b->n_taken; i++) {
                Request *r = &b->requests[i];

                if (dup3(r->fd, r->stand_in, O_CLOEXEC) < 0)
                        return -errno;
                close(r->fd);
                r->fd = -1;
        }
        for (size_t i = 0; i < b->n_binds; i++) {
                const Bind *x = &b->binds[i];

                /* As libbpf does: a map that cannot be bound is not a failed load. */
                if (!bind || bind(b->requests[x->request].stand_in, x->map_fd, &x->opts) < 0)
                        log_debug("binding map fd %d to program %s: %m", x->map_fd, b->requests[x->request].name);
        }
        b->ran = true;
        batched_loads++;
        batched_programs += (unsigned) b->n_taken;
        return 0;
}

bool prog_batch_take(enum bpf_prog_type type, const char *name, const char *license, const struct bpf_insn *insns,
                     size_t insn_cnt, const struct bpf_prog_load_opts *opts, int *ret) {
        Batch *b = current;
        Request *r;
        int k;

        if (!b || !name)
                return false;
        if (b->error < 0)
                return strcmp(name, b->failed_name) == 0 && fail(b, name, b->error, ret);
        if (b->n_taken >= b->n_expected || type != b->expected[b->n_taken].type ||
            strcmp(name, b->expected[b->n_taken].name) != 0) {
                /* Not the program expected next: a feature probe, or libbpf loading otherwise than foreseen,
                 * which the sequential load is for. */
                for (size_t i = 0; i < b->n_expected; i++)
                        if (strcmp(name, b->expected[i].name) == 0)
                                return fail(b, name, -EAGAIN, ret);
                return false;
        }
        if (opts && (opts->log_level != 0 || opts->log_buf))
                return fail(b, name, -EAGAIN, ret);

        r = &b->requests[b->n_taken];
        *r = (Request) {
                .type = type, .name = name, .license = license, .insns = insns, .insn_cnt = insn_cnt,
                .stand_in = -1, .fd = -1,
        };
        r->opts.sz = sizeof(r->opts);
        if (opts)
                memcpy(&r->opts, opts, MIN(opts->sz, sizeof(r->opts)));
        b->n_taken++;

        if (b->n_taken < b->n_expected) {
                k = stand_in();
                if (k < 0) {
                        b->n_taken--;
                        return fail(b, name, k, ret);
                }
                *ret = r->stand_in = k;
                return true;
        }

        k = batch_run(b);
        if (k < 0) {
                batch_failures++;
                return fail(b, name, k, ret);
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
                b->binds[b->n_binds] = (Bind) { .request = i, .map_fd = map_fd, .opts.sz = sizeof(a->opts) };
                if (opts)
                        memcpy(&b->binds[b->n_binds].opts, opts, MIN(opts->sz, sizeof(a->opts)));
                b->n_binds++;
                *ret = 0;
                return true;
        }
        return false;
}

bool prog_batch_end(void) {
        /* Stand-ins handed out for a batch that never ran are no programs, whatever libbpf made of them. */
        bool again = current && (current->error < 0 || (current->n_taken > 0 && !current->ran));

        batch_free(current);
        current = NULL;
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
