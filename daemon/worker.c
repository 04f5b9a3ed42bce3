/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <grp.h>
#include <sys/wait.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "worker.h"

#define WORKER_TIMEOUT_MS 10000
#define WORKER_MEMORY (1024ull * 1024 * 1024)
#define WORKER_CPU_SECONDS 10
#define WORKER_ANSWER_MAX (64u * 1024 * 1024)
#define WORKER_UID 65534 /* nobody */

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* valgrind runs the worker on its own syscalls and fds, which seccomp and close_range would take away. */
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND RUNNING_ON_VALGRIND
#else
#define UNDER_VALGRIND 0
#endif

/* Answer: u32 length, then a JSON object {"r", "error", "failed", "needs_full_btf", "relocations", "min_btf_size"}, then min_btf bytes. */

static int write_all(int fd, const void *p, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -EIO;
                p = (const char *) p + n;
                len -= (size_t) n;
        }
        return 0;
}

static int confine(void) {
        static const int allowed[] = {
                SCMP_SYS(read),  SCMP_SYS(write),        SCMP_SYS(exit),          SCMP_SYS(exit_group),
                SCMP_SYS(brk),   SCMP_SYS(mmap),         SCMP_SYS(munmap),        SCMP_SYS(mremap),
                SCMP_SYS(madvise), SCMP_SYS(futex),      SCMP_SYS(rt_sigreturn), SCMP_SYS(clock_gettime),
                SCMP_SYS(getpid), SCMP_SYS(gettid),      SCMP_SYS(close),         SCMP_SYS(nanosleep),
                SCMP_SYS(mprotect), SCMP_SYS(sysinfo), /* glibc's malloc and qsort */
                SCMP_SYS(sigaltstack),                 /* sanitizer runtimes */
        };
        struct rlimit mem = { WORKER_MEMORY, WORKER_MEMORY }, cpu = { WORKER_CPU_SECONDS, WORKER_CPU_SECONDS };
        scmp_filter_ctx ctx;
        int r;

        /* ASan's shadow memory alone is larger than any sensible data limit. */
        if ((!SANITIZED && setrlimit(RLIMIT_DATA, &mem) < 0) || setrlimit(RLIMIT_CPU, &cpu) < 0)
                return -errno;
        /* As root: become nobody, which drops every capability. */
        if (geteuid() == 0 && (setgroups(0, NULL) < 0 || setresgid(WORKER_UID, WORKER_UID, WORKER_UID) < 0 ||
                               setresuid(WORKER_UID, WORKER_UID, WORKER_UID) < 0))
                return -errno;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        if (UNDER_VALGRIND)
                return 0; /* a leak check of the daemon, by its admin: the worker runs without seccomp */
        ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
        if (!ctx)
                return -ENOMEM;
        r = 0;
        for (size_t i = 0; i < ELEMENTSOF(allowed) && r >= 0; i++)
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
        if (r >= 0)
                r = seccomp_load(ctx);
        seccomp_release(ctx);
        return r;
}

static json_object *relocations_json(const CorePlan *plan) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; plan && i < plan->n_relocations; i++) {
                const CoreRelocation *c = &plan->relocations[i];
                json_object *e = json_object_new_object();

                json_object_object_add(e, "program", json_object_new_string(c->program ?: ""));
                json_object_object_add(e, "section", json_object_new_string(c->section ?: ""));
                json_object_object_add(e, "insn", json_object_new_int64(c->insn));
                json_object_object_add(e, "kind", json_object_new_string(c->kind ?: ""));
                json_object_object_add(e, "type", json_object_new_string(c->type ?: ""));
                json_object_object_add(e, "access", json_object_new_string(c->access ?: ""));
                json_object_object_add(e, "local", json_object_new_int64(c->local));
                json_object_object_add(e, "target", json_object_new_int64(c->target));
                if (c->btf)
                        json_object_object_add(e, "btf", json_object_new_string(c->btf));
                json_object_object_add(e, "ok", json_object_new_boolean(c->ok));
                json_object_object_add(e, "poisoned", json_object_new_boolean(c->poisoned));
                if (c->error)
                        json_object_object_add(e, "error", json_object_new_string(c->error));
                json_object_array_add(a, e);
        }
        return a;
}

_noreturn_ static void worker_main(int fd, const void *elf, size_t size, CoreLookup lookup, void *userdata) {
        const char *fault = getenv("BPFCORED_TEST_WORKER_FAULT");
        _cleanup_free_ char *error = NULL;
        CorePlan *plan = NULL;
        json_object *answer;
        const void *btf = NULL;
        uint32_t btf_size = 0, len;
        const char *text;
        int r;

        /* Nothing of the daemon's (sockets, pins, the journal) is reachable from here. */
        if (dup2(fd, 3) < 0 || (close_range(4, ~0u, 0) < 0 && !UNDER_VALGRIND) || confine() < 0)
                _exit(120);
        fd = 3;
        if (fault && strcmp(fault, "crash") == 0)
                abort();
        if (fault && strcmp(fault, "hang") == 0)
                for (;;)
                        ;

        r = core_plan(elf, size, lookup, userdata, &plan, &error);
        answer = json_object_new_object();
        json_object_object_add(answer, "r", json_object_new_int(r));
        if (error)
                json_object_object_add(answer, "error", json_object_new_string(error));
        if (plan) {
                if (plan->min_btf)
                        btf = btf__raw_data(plan->min_btf, &btf_size);
                json_object_object_add(answer, "failed", json_object_new_boolean(plan->failed));
                json_object_object_add(answer, "needs_full_btf", json_object_new_boolean(plan->needs_full_btf));
                json_object_object_add(answer, "relocations", relocations_json(plan));
                json_object_object_add(answer, "min_btf_size", json_object_new_int64(btf ? (int64_t) btf_size : -1));
        }
        text = json_object_to_json_string_ext(answer, JSON_C_TO_STRING_PLAIN);
        len = (uint32_t) strlen(text);
        if (write_all(fd, &len, sizeof(len)) < 0 || write_all(fd, text, len) < 0 ||
            (btf && write_all(fd, btf, btf_size) < 0))
                _exit(121);
        _exit(0);
}

/* Reads exactly len bytes before the deadline. */
static int read_exactly(int fd, void *p, size_t len, const struct timespec *deadline) {
        while (len > 0) {
                struct timespec now;
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                long ms;
                ssize_t n;

                clock_gettime(CLOCK_MONOTONIC, &now);
                ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
                if (ms <= 0)
                        return -ETIMEDOUT;
                if (poll(&pfd, 1, (int) ms) <= 0)
                        continue;
                n = read(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -EPIPE;
                p = (char *) p + n;
                len -= (size_t) n;
        }
        return 0;
}

static char *dup_field(json_object *o, const char *key) {
        json_object *v;

        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
                       ? strdup(json_object_get_string(v))
                       : NULL;
}

/* The plan from the worker's answer; every field checked, as from any untrusted peer. */
static int plan_from_answer(json_object *a, const void *btf, size_t btf_size, CorePlan **ret) {
        _cleanup_(core_plan_freep) CorePlan *plan = calloc(1, sizeof(CorePlan));
        json_object *relos, *v;
        size_t n;

        if (!plan)
                return -ENOMEM;
        if (!json_object_object_get_ex(a, "relocations", &relos) || !json_object_is_type(relos, json_type_array))
                return -EBADMSG;
        n = json_object_array_length(relos);
        if (n > CORE_RELOCATIONS_MAX)
                return -EBADMSG;
        plan->relocations = calloc(n + 1, sizeof(CoreRelocation));
        if (!plan->relocations)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(relos, i);
                CoreRelocation *c = &plan->relocations[plan->n_relocations++];
                _cleanup_free_ char *kind = dup_field(e, "kind");

                c->kind = core_kind_name(kind);
                if (!c->kind)
                        return -EBADMSG;
                c->program = dup_field(e, "program");
                c->section = dup_field(e, "section");
                c->type = dup_field(e, "type");
                c->access = dup_field(e, "access");
                c->btf = dup_field(e, "btf");
                c->error = dup_field(e, "error");
                c->insn = (uint32_t) json_object_get_int64(json_object_object_get(e, "insn"));
                c->local = json_object_get_int64(json_object_object_get(e, "local"));
                c->target = json_object_get_int64(json_object_object_get(e, "target"));
                c->ok = json_object_get_boolean(json_object_object_get(e, "ok"));
                c->poisoned = json_object_get_boolean(json_object_object_get(e, "poisoned"));
        }
        plan->failed = json_object_object_get_ex(a, "failed", &v) && json_object_get_boolean(v);
        plan->needs_full_btf = json_object_object_get_ex(a, "needs_full_btf", &v) && json_object_get_boolean(v);
        if (btf) {
                /* libbpf validates BTF it parses; the minimal BTF is small and built by our own code. */
                plan->min_btf = btf__new(btf, (uint32_t) btf_size);
                if (!plan->min_btf)
                        return -EBADMSG;
        }
        *ret = TAKE_PTR(plan);
        return 0;
}

int worker_core_plan(const void *elf, size_t size, CoreLookup lookup, void *userdata, CorePlan **ret,
                     char **ret_error) {
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ void *btf = NULL;
        int sv[2], status = 0, r;
        struct timespec deadline;
        json_object *answer = NULL, *v;
        int64_t btf_size = -1;
        uint32_t len = 0;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                r = -errno;
                close(sv[0]);
                close(sv[1]);
                return r;
        }
        if (pid == 0) {
                close(sv[0]);
                worker_main(sv[1], elf, size, lookup, userdata);
        }
        close(sv[1]);

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += WORKER_TIMEOUT_MS / 1000;
        r = read_exactly(sv[0], &len, sizeof(len), &deadline);
        if (r >= 0 && (len == 0 || len > WORKER_ANSWER_MAX))
                r = -EBADMSG;
        if (r >= 0 && !(text = malloc((size_t) len + 1)))
                r = -ENOMEM;
        if (r >= 0)
                r = read_exactly(sv[0], text, len, &deadline);
        if (r >= 0) {
                text[len] = 0;
                answer = json_tokener_parse(text);
                if (!answer || !json_object_is_type(answer, json_type_object))
                        r = -EBADMSG;
        }
        if (r >= 0 && json_object_object_get_ex(answer, "min_btf_size", &v))
                btf_size = json_object_get_int64(v);
        if (r >= 0 && btf_size > 0) {
                if ((uint64_t) btf_size > WORKER_ANSWER_MAX)
                        r = -EBADMSG;
                else if (!(btf = malloc((size_t) btf_size)))
                        r = -ENOMEM;
                else
                        r = read_exactly(sv[0], btf, (size_t) btf_size, &deadline);
        }
        close(sv[0]);
        if (r == -ETIMEDOUT)
                kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;

        if (r == -ETIMEDOUT) {
                json_object_put(answer);
                *ret_error = strdup("object parser timed out");
                return -EBADMSG;
        }
        if (WIFSIGNALED(status) || (r < 0 && r != -ENOMEM)) {
                json_object_put(answer);
                if (asprintf(ret_error, "object parser crashed (%s %d)", WIFSIGNALED(status) ? "signal" : "exit status",
                             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status)) < 0)
                        *ret_error = NULL;
                log_warning("Object parser worker %d died: %s.", pid, *ret_error ?: "?");
                return -EBADMSG;
        }
        if (r < 0) {
                json_object_put(answer);
                return r;
        }
        r = json_object_get_int(json_object_object_get(answer, "r"));
        if (r < 0) {
                *ret_error = dup_field(answer, "error");
                json_object_put(answer);
                return r == -ENOMEM ? r : -EBADMSG;
        }
        r = plan_from_answer(answer, btf, btf_size > 0 ? (size_t) btf_size : 0, ret);
        json_object_put(answer);
        if (r == -EBADMSG)
                *ret_error = strdup("the object parser's answer is malformed");
        return r;
}
