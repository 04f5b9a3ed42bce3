/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <ctype.h>
#include <fnmatch.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <limits.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <linux/perf_event.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>

#include "attach.h"
#include "log.h"
#include "params.h"
#include "protocol.h"

/* Caps on the names a spec carries; the kernel's own are KSYM_NAME_LEN and the tracefs layout. */
#define TRACEPOINT_NAME_MAX 256
#define FUNCTION_NAME_MAX 512
#define SYMBOL_NAME_MAX 1024
#define ATTACH_TYPE_NAME_MAX 64
/* Functions one kprobe_multi link may probe: each costs the kernel an ftrace entry and a lookup. */
#define KPROBE_MULTI_MAX 4096

typedef struct OptionalU64 {
        uint64_t value;
        bool set;
} OptionalU64;

typedef struct Spec {
        const char *tracepoint;
        const char *function;
        const char *path;
        const char *symbol;
        OptionalU64 offset;
        OptionalU32 pid;
        const char *interface;
        const char *mode;
        const char *direction;
        const char *attach_type;
        const char *event;
        OptionalU32 cpu;
        OptionalU64 frequency;
        OptionalU64 period;
        OptionalU32 priority;
        const char *pattern;
        json_object *functions; /* array of strings, checked */
} Spec;

typedef struct AttachKind AttachKind;

typedef struct Attach {
        const AttachKind *kind;
        const AttachRequest *req;
        int prog_fd;
        struct bpf_prog_info info;
        Spec spec;
        Failure *f;
        /* Set by the kind's attach function on success only: a link, or a clsact filter. */
        int link_fd;
        char *target;
        bool is_filter;
        TcFilter filter;
} Attach;

struct AttachKind {
        const char *name;
        enum bpf_prog_type prog_type;     /* what the program must be; UNSPEC: attach() checks */
        enum bpf_prog_type prog_type_alt; /* or this, when not UNSPEC */
        const ParamField *spec;
        int (*attach)(Attach *a);
        enum bpf_attach_type attach_type; /* the BTF-named kinds' link type */
        bool retprobe;
};

static void btf_freep(struct btf **b) {
        btf__free(*b);
}

static uint64_t ptr_to_u64(const void *p) {
        return (uint64_t) (uintptr_t) p;
}

static pid_t caller(const Attach *a) {
        return a->req->caller_pid > 0 ? a->req->caller_pid : getpid();
}

/* "<what>: <strerror> (<ENAME> from <call>)": the kernel's reason in its own words. */
_printf_(4, 5) static int attach_failed_errno(Failure *f, int err, const char *call, const char *fmt, ...) {
        _cleanup_free_ char *what = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&what, fmt, ap) < 0)
                what = NULL;
        va_end(ap);
        return failure_setf(f, err, VL_ERROR_ATTACH_FAILED, "message", "%s: %s (%s from %s)",
                            what ?: "(out of memory)", strerror(-err), strerrorname_np(-err) ?: "?", call);
}

static int oom(Attach *a) {
        return failure_system(a->f, -ENOMEM, "attaching as %s", a->kind->name);
}

#define attach_failed(a, err, ...)                                                                          \
        failure_setf((a)->f, (err), VL_ERROR_ATTACH_FAILED, "message", __VA_ARGS__)

/* io.bpfcored.InvalidParameter naming the field as the Attach call spells it: "uprobe.path". */
_printf_(3, 4) static int spec_invalid(Attach *a, const char *field, const char *fmt, ...) {
        _cleanup_free_ char *parameter = NULL, *message = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&message, fmt, ap) < 0)
                message = NULL;
        va_end(ap);
        if (asprintf(&parameter, "%s.%s", a->kind->name, field) < 0)
                parameter = NULL;
        return failure_invalid_parameter(a->f, -EINVAL, parameter ?: field, "%s",
                                         message ?: "(out of memory)");
}

static int param_optional_uint64(const ParamField *field, json_object *v, void *dst, char **ret_message) {
        OptionalU64 *o = dst;
        int r = param_uint64(field, v, &o->value, ret_message);

        if (r >= 0)
                o->set = true;
        return r;
}

/* A name made of letters, digits and the characters in extra, 1 to max bytes. */
static bool name_valid(const char *s, size_t max, const char *extra) {
        size_t n = strlen(s);

        if (n == 0 || n > max)
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr(extra, *p))
                        return false;
        return true;
}

/* Printable without spaces, 1 to max bytes: symbol names of any language's mangling. */
static bool symbol_valid(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n == 0 || n > max)
                return false;
        for (const char *p = s; *p; p++)
                if (!isgraph((unsigned char) *p))
                        return false;
        return true;
}

/* Absolute, bounded, and no ".." component: the caller names a place, never climbs out of one. */
static bool path_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n >= PATH_MAX || s[0] != '/')
                return false;
        for (const char *p = s; (p = strstr(p, "..")); p += 2)
                if (p[-1] == '/' && (p[2] == '/' || p[2] == 0))
                        return false;
        return true;
}

/* What the kernel accepts as an interface name (dev_valid_name()). */
static bool interface_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n >= IFNAMSIZ || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        for (const char *p = s; *p; p++)
                if (*p == '/' || *p == ':' || !isgraph((unsigned char) *p))
                        return false;
        return true;
}

static int read_file_at(int dirfd, const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        ssize_t n;

        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, size - 1);
        if (n < 0)
                return negative_errno();
        buf[n] = 0;
        return 0;
}

/*
 * Opens path as the caller sees it: symlinks and ".." stay inside the caller's root. what names the thing
 * in messages: "file", "cgroup".
 */
static int open_as_caller(Attach *a, const char *path, uint64_t flags, const char *what, int *ret_fd) {
        _cleanup_close_ int root = -1;
        struct open_how how = {
                /* openat2() refuses O_NOCTTY next to O_PATH. */
                .flags = flags | O_CLOEXEC | (flags & O_PATH ? 0 : O_NOCTTY),
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        char p[64];
        int fd;

        snprintf(p, sizeof(p), "/proc/%d/root", (int) caller(a));
        root = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0)
                return attach_failed_errno(a->f, negative_errno(), "open",
                                           "cannot reach the caller's mount namespace through %s", p);
        fd = (int) syscall(SYS_openat2, root, path, &how, sizeof(how));
        if (fd < 0 && errno == ENOENT)
                return attach_failed(a, -ENOENT, "no such %s: %s", what, path);
        if (fd < 0)
                return attach_failed_errno(a->f, negative_errno(), "openat2", "opening %s %s", what, path);
        *ret_fd = fd;
        return 0;
}

/* Back to the daemon's own network namespace; cleanup for netns_enter(). */
static void netns_leavep(int *own) {
        if (*own < 0)
                return;
        /* Carrying on in the caller's namespace would make every later lookup of this thread lie. */
        if (setns(*own, CLONE_NEWNET) < 0) {
                log_error_errno(negative_errno(), "Cannot return to the daemon's network namespace: %m");
                abort();
        }
        *own = safe_close(*own);
}

/*
 * Enters the caller's network namespace when it is not ours: interface names and the ifindex that
 * bpf_link_create() takes both mean something only there. *ret_own is what netns_leavep() returns
 * to, -1 when nothing was entered.
 */
static int netns_enter(Attach *a, int *ret_own) {
        _cleanup_close_ int own = -1, theirs = -1;
        struct stat own_st, their_st;
        char p[64];

        *ret_own = -1;
        snprintf(p, sizeof(p), "/proc/%d/ns/net", (int) caller(a));
        theirs = open(p, O_RDONLY | O_CLOEXEC);
        if (theirs < 0)
                return attach_failed_errno(a->f, negative_errno(), "open",
                                           "cannot reach the caller's network namespace through %s", p);
        own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (own < 0 || fstat(own, &own_st) < 0 || fstat(theirs, &their_st) < 0)
                return failure_system(a->f, negative_errno(), "looking at network namespaces");
        if (own_st.st_dev == their_st.st_dev && own_st.st_ino == their_st.st_ino)
                return 0;
        if (setns(theirs, CLONE_NEWNET) < 0)
                return attach_failed_errno(a->f, negative_errno(), "setns",
                                           "cannot enter the caller's network namespace");
        *ret_own = TAKE_FD(own);
        return 0;
}

static int interface_index(Attach *a, const char *name, unsigned *ret) {
        unsigned ifindex = if_nametoindex(name);

        if (ifindex == 0)
                return errno == ENODEV || errno == ENXIO
                               ? attach_failed(a, -ENODEV, "no such interface: %s", name)
                               : attach_failed_errno(a->f, negative_errno(), "if_nametoindex",
                                                     "looking up interface %s", name);
        *ret = ifindex;
        return 0;
}

/*
 * A tracefs to read tracepoint ids from: the mounted one, or, when none is (no systemd mounted it),
 * a private instance that no mount table shows and that goes away with the fd.
 */
static int tracefs_open(int *ret_fd) {
        static const char *const paths[] = { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" };
        _cleanup_close_ int ctx = -1;
        int fd;

        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                struct statfs sfs;

                fd = open(paths[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                if (fstatfs(fd, &sfs) == 0 && sfs.f_type == TRACEFS_MAGIC) {
                        *ret_fd = fd;
                        return 0;
                }
                safe_close(fd);
        }
        ctx = fsopen("tracefs", FSOPEN_CLOEXEC);
        if (ctx < 0 || fsconfig(ctx, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return negative_errno();
        fd = fsmount(ctx, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                                   MOUNT_ATTR_NOEXEC);
        if (fd < 0)
                return negative_errno();
        *ret_fd = fd;
        return 0;
}

/* The perf PMU type of a dynamic PMU ("kprobe", "uprobe"); -ENOENT when this kernel has none. */
static int pmu_type(const char *pmu, int *ret_type, bool retprobe, __u64 *ret_config) {
        char path[128], buf[64];
        int bit, r;

        snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s/type", pmu);
        r = read_file_at(AT_FDCWD, path, buf, sizeof(buf));
        if (r < 0)
                return r;
        if (sscanf(buf, "%d", ret_type) != 1)
                return -EINVAL;
        *ret_config = 0;
        if (!retprobe)
                return 0;
        /* "config:0": which bit of attr.config asks for a return probe. */
        snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s/format/retprobe", pmu);
        r = read_file_at(AT_FDCWD, path, buf, sizeof(buf));
        if (r < 0)
                return r;
        if (sscanf(buf, "config:%d", &bit) != 1 || bit < 0 || bit > 63)
                return -EINVAL;
        *ret_config = UINT64_C(1) << bit;
        return 0;
}

static int perf_event_open_fd(struct perf_event_attr *attr, pid_t pid) {
        /* One event for the probe: all CPUs of one process, or every process (counted on CPU 0). */
        int fd = (int) syscall(SYS_perf_event_open, attr, pid > 0 ? pid : -1, pid > 0 ? -1 : 0, -1,
                               PERF_FLAG_FD_CLOEXEC);

        return fd < 0 ? negative_errno() : fd;
}

/* The link holds the perf event: our fd can go as soon as the link exists. */
static int perf_link(Attach *a, int pfd, const char *what) {
        int fd = bpf_link_create(a->prog_fd, pfd, BPF_PERF_EVENT, NULL);

        /* A program runs at most once per probe or tracepoint; a link being released still counts. */
        if (fd == -EEXIST)
                return attach_failed_errno(a->f, fd, "bpf_link_create",
                                           "the program is already attached to %s", what);
        if (fd < 0)
                return attach_failed_errno(a->f, fd, "bpf_link_create", "attaching to %s", what);
        a->link_fd = fd;
        return 0;
}

static int attach_tracepoint(Attach *a) {
        _cleanup_close_ int tracefs = -1, pfd = -1;
        _cleanup_free_ char *target = NULL;
        const char *tp = a->spec.tracepoint, *slash = strchr(tp, '/');
        char path[TRACEPOINT_NAME_MAX + 32], buf[32];
        struct perf_event_attr attr = { .type = PERF_TYPE_TRACEPOINT, .size = sizeof(attr) };
        int r;

        if (!slash || slash == tp || !name_valid(slash + 1, TRACEPOINT_NAME_MAX, "_-") ||
            strlen(tp) > TRACEPOINT_NAME_MAX)
                return spec_invalid(a, "tracepoint",
                                    "'%.64s' is not category/name, as in syscalls/sys_enter_execve", tp);
        snprintf(path, sizeof(path), "%.*s", (int) (slash - tp), tp);
        if (!name_valid(path, TRACEPOINT_NAME_MAX, "_-"))
                return spec_invalid(a, "tracepoint",
                                    "'%.64s' is not category/name, as in syscalls/sys_enter_execve", tp);

        r = tracefs_open(&tracefs);
        if (r < 0)
                return attach_failed_errno(a->f, r, "fsopen",
                                           "tracefs is not mounted and cannot be mounted");
        snprintf(path, sizeof(path), "events/%s/id", tp);
        r = read_file_at(tracefs, path, buf, sizeof(buf));
        if (r == -ENOENT)
                return attach_failed(a, r, "no such tracepoint: %s", tp);
        if (r < 0)
                return attach_failed_errno(a->f, r, "open", "reading the id of tracepoint %s", tp);
        if (sscanf(buf, "%llu", &attr.config) != 1)
                return attach_failed(a, -EINVAL, "tracefs gave no id for tracepoint %s", tp);

        target = strdup(tp);
        if (!target)
                return oom(a);
        pfd = perf_event_open_fd(&attr, 0);
        if (pfd < 0)
                return attach_failed_errno(a->f, pfd, "perf_event_open", "opening tracepoint %s", tp);
        r = perf_link(a, pfd, tp);
        if (r < 0)
                return r;
        a->target = TAKE_PTR(target);
        return 0;
}

static int attach_raw_tp(Attach *a) {
        _cleanup_free_ char *target = NULL;
        const char *tp = a->spec.tracepoint;
        int fd;

        if (!name_valid(tp, TRACEPOINT_NAME_MAX, "_-"))
                return spec_invalid(a, "tracepoint", "'%.64s' is not a raw tracepoint name, as in sys_enter",
                                    tp);
        target = strdup(tp);
        if (!target)
                return oom(a);
        fd = bpf_raw_tracepoint_open(tp, a->prog_fd);
        if (fd == -ENOENT)
                return attach_failed(a, fd, "no such tracepoint: %s", tp);
        if (fd < 0)
                return attach_failed_errno(a->f, fd, "bpf_raw_tracepoint_open",
                                           "attaching to raw tracepoint %s", tp);
        a->link_fd = fd;
        a->target = TAKE_PTR(target);
        return 0;
}

/* The kernel function or tracepoint a BTF-attached program was loaded for, by its BTF name. */
static int btf_target_name(const struct bpf_prog_info *info, char **ret) {
        _cleanup_(btf_freep) struct btf *vmlinux = NULL, *btf = NULL;
        _cleanup_close_ int fd = -1;
        char name[64] = "";
        struct bpf_btf_info bi = { .name = ptr_to_u64(name), .name_len = sizeof(name) };
        __u32 len = sizeof(bi);
        const struct btf_type *t;
        const char *s;
        char *copy;
        int r;

        /* No object id: the target is another BPF program's BTF, not the kernel's. */
        if (info->attach_btf_obj_id == 0 || info->attach_btf_id == 0)
                return -ENOENT;
        fd = bpf_btf_get_fd_by_id(info->attach_btf_obj_id);
        if (fd < 0)
                return fd;
        r = bpf_btf_get_info_by_fd(fd, &bi, &len);
        if (r < 0)
                return r;
        /* A module's BTF is split: its types follow vmlinux's. */
        if (strcmp(name, "vmlinux") != 0) {
                vmlinux = btf__load_vmlinux_btf();
                if (!vmlinux)
                        return negative_errno();
        }
        btf = btf__load_from_kernel_by_id_split(info->attach_btf_obj_id, vmlinux);
        if (!btf)
                return negative_errno();
        t = btf__type_by_id(btf, info->attach_btf_id);
        s = t ? btf__name_by_offset(btf, t->name_off) : NULL;
        if (!s || !*s)
                return -ENOENT;
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static int attach_btf(Attach *a) {
        _cleanup_free_ char *btf_name = NULL, *target = NULL;
        const char *kind = a->kind->name;
        bool raw_tp = false;
        int fd, r;

        r = btf_target_name(&a->info, &btf_name);
        if (r >= 0) {
                /* tp_btf targets are the typedefs btf_trace_<tracepoint>; lsm ones bpf_lsm_<hook>. */
                raw_tp = strncmp(btf_name, "btf_trace_", 10) == 0;
                if (raw_tp)
                        target = strdup(btf_name + 10);
                else if (a->info.type == BPF_PROG_TYPE_LSM && strncmp(btf_name, "bpf_lsm_", 8) == 0)
                        target = strdup(btf_name + 8);
                else
                        target = strdup(btf_name);
        } else if (asprintf(&target, "btf id %u", a->info.attach_btf_id) < 0)
                target = NULL;
        if (!target)
                return oom(a);

        if (r >= 0 && a->info.type == BPF_PROG_TYPE_TRACING) {
                bool want_raw_tp = a->kind->attach_type == BPF_TRACE_RAW_TP;

                if (raw_tp && !want_raw_tp)
                        return attach_failed(a, -EINVAL,
                                             "program is a tp_btf program (tracepoint %s), not a %s program",
                                             target, kind);
                if (!raw_tp && want_raw_tp)
                        return attach_failed(
                                a, -EINVAL,
                                "program is a tracing program for function %s (fentry, fexit or "
                                "fmod_ret), not a tp_btf program",
                                target);
        }

        /* Target 0: the kernel attaches where the program's attach_btf_id, fixed at load, says. */
        fd = bpf_link_create(a->prog_fd, 0, a->kind->attach_type, NULL);
        if (fd == -EINVAL)
                return attach_failed_errno(a->f, fd, "bpf_link_create",
                                           "attaching to %s as %s (was the program loaded as %s?)", target,
                                           kind, kind);
        if (fd < 0)
                return attach_failed_errno(a->f, fd, "bpf_link_create", "attaching to %s as %s", target,
                                           kind);
        a->link_fd = fd;
        a->target = TAKE_PTR(target);
        return 0;
}

typedef struct Names {
        char **v;
        size_t n;
} Names;

static void names_done(Names *names) {
        for (size_t i = 0; i < names->n; i++)
                free(names->v[i]);
        free(names->v);
        *names = (Names) {};
}

static int names_add(Names *names, const char *name) {
        char **v, *copy;

        if (names->n >= KPROBE_MULTI_MAX)
                return -E2BIG;
        copy = strdup(name);
        v = copy ? reallocarray(names->v, names->n + 1, sizeof(char *)) : NULL;
        if (!v) {
                free(copy);
                return -ENOMEM;
        }
        names->v = v;
        names->v[names->n++] = copy;
        return 0;
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Sorted, each once: the kernel resolves every name, and one function probed twice is an error there. */
static void names_sort_unique(Names *names) {
        size_t k = 0;

        if (names->n == 0)
                return;
        qsort(names->v, names->n, sizeof(char *), strcmp_ptr);
        for (size_t i = 1; i < names->n; i++) {
                if (strcmp(names->v[i], names->v[k]) == 0)
                        free(names->v[i]);
                else
                        names->v[++k] = names->v[i];
        }
        names->n = k + 1;
}

/*
 * The functions a glob matches, from tracefs's available_filter_functions: the functions ftrace can
 * hook, which are the ones a kprobe_multi link can attach to (kallsyms also lists ones it cannot).
 */
static int functions_matching(Attach *a, const char *pattern, Names *ret) {
        _cleanup_close_ int tracefs = -1, fd = -1;
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        FILE *f;
        int r = 0;

        r = tracefs_open(&tracefs);
        if (r < 0)
                return attach_failed_errno(a->f, r, "fsopen", "tracefs is not mounted and cannot be mounted");
        r = 0;
        fd = openat(tracefs, "available_filter_functions", O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
                return attach_failed(a, -EOPNOTSUPP,
                                     "this kernel has no function tracer (no available_filter_functions in "
                                     "tracefs): kprobe patterns cannot be resolved");
        if (fd < 0)
                return attach_failed_errno(a->f, negative_errno(), "open",
                                           "reading available_filter_functions to resolve pattern %s (give "
                                           "functions instead)", pattern);
        f = fdopen(fd, "re");
        if (!f)
                return failure_system(a->f, negative_errno(), "reading available_filter_functions");
        TAKE_FD(fd);
        /* "name" or "name [module]" per line. */
        while (r >= 0 && getline(&line, &size, f) > 0) {
                line[strcspn(line, " \t\n")] = 0;
                /* What ftrace lists for a function it found but could not place. */
                if (strncmp(line, "__ftrace_invalid_address__", 26) == 0 || fnmatch(pattern, line, 0) != 0)
                        continue;
                r = names_add(ret, line);
        }
        fclose(f);
        if (r == -E2BIG)
                return attach_failed(a, r, "pattern %s matches more than %d functions: narrow it", pattern,
                                     KPROBE_MULTI_MAX);
        if (r < 0)
                return oom(a);
        if (ret->n == 0)
                return attach_failed(a, -ENOENT, "no kernel function that can be probed matches %s", pattern);
        return 0;
}

/*
 * One kprobe_multi link on many functions (a pattern or a list): the kernel's fprobe, 5.18 on. The
 * program must have been loaded for it (SEC("kprobe.multi/...") or "kretprobe.multi/...").
 */
static int attach_kprobe_multi(Attach *a) {
        _cleanup_(names_done) Names names = {};
        _cleanup_free_ char *target = NULL;
        const Spec *s = &a->spec;
        LIBBPF_OPTS(bpf_link_create_opts, opts);
        int fd, r;

        if (s->function || s->offset.set || (s->pattern && s->functions))
                return spec_invalid(a, s->function ? "function" : s->offset.set ? "offset" : "functions",
                                    "give one of function (and offset), pattern or functions");
        if (s->pattern && !name_valid(s->pattern, FUNCTION_NAME_MAX, "_.*?[]!-"))
                return spec_invalid(a, "pattern", "'%.64s' is not a glob of kernel function names", s->pattern);
        if (s->functions) {
                size_t n = json_object_array_length(s->functions);

                if (n == 0 || n > KPROBE_MULTI_MAX)
                        return spec_invalid(a, "functions", "give 1 to %d function names, not %zu",
                                            KPROBE_MULTI_MAX, n);
                for (size_t i = 0; i < n; i++) {
                        const char *fn = json_object_get_string(json_object_array_get_idx(s->functions, i));

                        if (!name_valid(fn, FUNCTION_NAME_MAX, "_."))
                                return spec_invalid(a, "functions", "'%.64s' is not a kernel function name", fn);
                        if (names_add(&names, fn) < 0)
                                return oom(a);
                }
        }

        /* Without fprobe the kernel says so before it looks at anything else: ask before reading tracefs. */
        opts.kprobe_multi.flags = a->kind->retprobe ? BPF_F_KPROBE_MULTI_RETURN : 0;
        fd = bpf_link_create(a->prog_fd, 0, BPF_TRACE_KPROBE_MULTI, &opts);
        if (fd >= 0)
                safe_close(fd); /* cannot be: no function given */
        if (fd == -EOPNOTSUPP)
                return attach_failed_errno(a->f, fd, "bpf_link_create",
                                           "multi-kprobes are not available on this kernel (it needs fprobe, "
                                           "5.18 and later)");

        if (s->pattern) {
                r = functions_matching(a, s->pattern, &names);
                if (r < 0)
                        return r;
        }
        names_sort_unique(&names);
        if (s->pattern)
                r = asprintf(&target, "%s (%zu function%s)", s->pattern, names.n, names.n == 1 ? "" : "s");
        else
                r = names.n == 1 ? asprintf(&target, "%s", names.v[0])
                                 : asprintf(&target, "%s and %zu more", names.v[0], names.n - 1);
        if (r < 0)
                return oom(a);

        opts.kprobe_multi.syms = (const char **) names.v;
        opts.kprobe_multi.cnt = (__u32) names.n;
        fd = bpf_link_create(a->prog_fd, 0, BPF_TRACE_KPROBE_MULTI, &opts);
        if (fd == -EOPNOTSUPP)
                return attach_failed_errno(a->f, fd, "bpf_link_create",
                                           "multi-kprobes are not available on this kernel (it needs fprobe, "
                                           "5.18 and later) for %s", target);
        if (fd == -ESRCH || fd == -ENOENT)
                return attach_failed_errno(a->f, fd, "bpf_link_create", "no kernel function that can be probed "
                                           "for every name of %s", target);
        if (fd == -EINVAL)
                return attach_failed_errno(a->f, fd, "bpf_link_create",
                                           "attaching %s as %s (was the program loaded as %s.multi, "
                                           "SEC(\"%s.multi/...\")?)",
                                           target, a->kind->name, a->kind->name, a->kind->name);
        if (fd < 0)
                return attach_failed_errno(a->f, fd, "bpf_link_create", "probing %s", target);
        a->link_fd = fd;
        a->target = TAKE_PTR(target);
        return 0;
}

static int attach_kprobe(Attach *a) {
        _cleanup_close_ int pfd = -1;
        _cleanup_free_ char *target = NULL;
        const char *fn = a->spec.function;
        struct perf_event_attr attr = { .size = sizeof(attr) };
        uint64_t offset = a->spec.offset.set ? a->spec.offset.value : 0;
        int type, r;

        if (a->spec.pattern || a->spec.functions)
                return attach_kprobe_multi(a);
        if (!fn)
                return spec_invalid(a, "function", "missing: give function, pattern or functions");
        if (!name_valid(fn, FUNCTION_NAME_MAX, "_."))
                return spec_invalid(a, "function", "'%.64s' is not a kernel function name", fn);
        if (a->kind->retprobe && offset != 0)
                return spec_invalid(a, "offset",
                                    "a kretprobe attaches to the function's entry: offset must be 0");
        if (offset > UINT32_MAX)
                return spec_invalid(a, "offset", "offset %llu lies beyond any function",
                                    (unsigned long long) offset);

        r = pmu_type("kprobe", &type, a->kind->retprobe, &attr.config);
        if (r == -ENOENT)
                return attach_failed(a, -EOPNOTSUPP,
                                     "kprobes are not available on this kernel (no kprobe PMU in "
                                     "/sys/bus/event_source/devices: ENOENT)");
        if (r < 0)
                return attach_failed_errno(a->f, r, "open", "reading the kprobe PMU's type");
        attr.type = (uint32_t) type;
        attr.config1 = ptr_to_u64(fn); /* kprobe_func */
        attr.config2 = offset;        /* probe_offset */

        if (offset ? asprintf(&target, "%s+0x%llx", fn, (unsigned long long) offset) < 0
                   : !(target = strdup(fn)))
                return oom(a);
        pfd = perf_event_open_fd(&attr, 0);
        if (pfd == -ENOENT || pfd == -EINVAL)
                return attach_failed_errno(a->f, pfd, "perf_event_open",
                                           "no kernel function %s that can be probed", target);
        if (pfd < 0)
                return attach_failed_errno(a->f, pfd, "perf_event_open", "probing kernel function %s",
                                           target);
        r = perf_link(a, pfd, target);
        if (r < 0)
                return r;
        a->target = TAKE_PTR(target);
        return 0;
}

/* "func" also names the versioned "func@@VER" and "func@VER" of dynamic symbols. */
static bool symbol_matches(const char *name, const char *symbol) {
        size_t n = strlen(symbol);

        return strncmp(name, symbol, n) == 0 && (name[n] == 0 || (name[n] == '@' && !strchr(symbol, '@')));
}

/*
 * The file offset of function symbol in one kind of symbol table: st_value moved from its section's
 * address to the section's place in the file, as libbpf's elf_sym_offset() does. A strong definition
 * wins over weak ones, as the linker decides; two strong ones at different places are ambiguous.
 */
static int symtab_lookup(Elf *elf, Elf64_Word sh_type, const char *symbol, uint64_t *ret) {
        Elf_Scn *scn = NULL;
        bool found = false, found_strong = false;
        uint64_t offset = 0;

        while ((scn = elf_nextscn(elf, scn))) {
                Elf_Data *data;
                GElf_Shdr sh;

                if (!gelf_getshdr(scn, &sh) || sh.sh_type != sh_type || sh.sh_entsize == 0 ||
                    !(data = elf_getdata(scn, NULL)))
                        continue;
                for (size_t i = 0; i < sh.sh_size / sh.sh_entsize && i < INT_MAX; i++) {
                        Elf_Scn *text;
                        GElf_Shdr tsh;
                        GElf_Sym sym;
                        const char *name;
                        uint64_t off;
                        bool strong;

                        if (!gelf_getsym(data, (int) i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
                            sym.st_shndx == SHN_UNDEF || sym.st_shndx >= SHN_LORESERVE)
                                continue;
                        name = elf_strptr(elf, sh.sh_link, sym.st_name);
                        if (!name || !symbol_matches(name, symbol))
                                continue;
                        text = elf_getscn(elf, sym.st_shndx);
                        if (!text || !gelf_getshdr(text, &tsh) || sym.st_value < tsh.sh_addr ||
                            sym.st_value - tsh.sh_addr >= tsh.sh_size)
                                continue;
                        off = sym.st_value - tsh.sh_addr + tsh.sh_offset;
                        strong = GELF_ST_BIND(sym.st_info) != STB_WEAK;
                        if (found && off != offset) {
                                if (strong == found_strong)
                                        return -ENOTUNIQ;
                                if (!strong)
                                        continue;
                        }
                        found = true;
                        found_strong = strong;
                        offset = off;
                }
        }
        if (!found)
                return -ENOENT;
        *ret = offset;
        return 0;
}

/* .symtab first (an unstripped binary lists its local functions there), then .dynsym. */
static int elf_function_offset(int fd, const char *symbol, uint64_t *ret) {
        Elf *elf;
        int r = -ENOENT;

        elf_version(EV_CURRENT);
        elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
        if (!elf)
                return -ENOEXEC;
        if (elf_kind(elf) == ELF_K_ELF) {
                r = symtab_lookup(elf, SHT_SYMTAB, symbol, ret);
                if (r == -ENOENT)
                        r = symtab_lookup(elf, SHT_DYNSYM, symbol, ret);
        } else
                r = -ENOEXEC;
        elf_end(elf);
        return r;
}

/* Is pid, a number in the caller's pid namespace, a number in ours too? */
static int same_pid_namespace(Attach *a) {
        struct stat own, theirs;
        char p[64];

        snprintf(p, sizeof(p), "/proc/%d/ns/pid", (int) caller(a));
        if (stat(p, &theirs) < 0 || stat("/proc/self/ns/pid", &own) < 0)
                return negative_errno();
        return own.st_dev == theirs.st_dev && own.st_ino == theirs.st_ino;
}

/* A pid filter (uprobe, perf_event): a process id, from the daemon's own pid namespace. Translating
 * between pid namespaces is not done: the number would name another process. */
static int check_pid(Attach *a, uint32_t pid) {
        int r;

        if (pid == 0 || pid > INT_MAX)
                return spec_invalid(a, "pid", "pid %u is not a process id", pid);
        r = same_pid_namespace(a);
        if (r < 0)
                return attach_failed_errno(a->f, r, "stat", "comparing the caller's pid namespace with ours");
        if (r == 0)
                return spec_invalid(a, "pid", "a pid filter is only possible from the daemon's pid namespace");
        return 0;
}

static int attach_uprobe(Attach *a) {
        _cleanup_close_ int file = -1, pfd = -1;
        _cleanup_free_ char *target = NULL;
        const Spec *s = &a->spec;
        struct perf_event_attr attr = { .size = sizeof(attr) };
        char fdpath[64];
        uint64_t offset = s->offset.value;
        struct stat st;
        int type, r;

        if (!path_valid(s->path))
                return spec_invalid(a, "path", "'%.64s' is not an absolute path without '..'", s->path);
        if (!s->symbol == !s->offset.set)
                return spec_invalid(a, s->symbol ? "offset" : "symbol",
                                    "give either symbol (a function's name) or offset (a file offset)");
        if (s->symbol && !symbol_valid(s->symbol, SYMBOL_NAME_MAX))
                return spec_invalid(a, "symbol", "'%.64s' is not a symbol name", s->symbol);
        if (s->pid.set) {
                r = check_pid(a, s->pid.value);
                if (r < 0)
                        return r;
        }

        r = open_as_caller(a, s->path, O_PATH, "file", &file);
        if (r < 0)
                return r;
        if (fstat(file, &st) < 0)
                return failure_system(a->f, negative_errno(), "stat %s", s->path);
        if (!S_ISREG(st.st_mode))
                return attach_failed(a, -EINVAL, "%s is not a regular file", s->path);
        /* The kernel and libelf reach the very file we opened, whatever the path does meanwhile. */
        snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", file);

        if (s->symbol) {
                _cleanup_close_ int elf_fd = open(fdpath, O_RDONLY | O_CLOEXEC | O_NOCTTY);

                if (elf_fd < 0)
                        return attach_failed_errno(a->f, negative_errno(), "open", "reading %s", s->path);
                r = elf_function_offset(elf_fd, s->symbol, &offset);
                if (r == -ENOENT)
                        return attach_failed(a, r, "no function %s in %s (looked in .symtab and .dynsym)",
                                             s->symbol, s->path);
                if (r == -ENOEXEC)
                        return attach_failed(a, r, "%s is not an ELF file", s->path);
                if (r == -ENOTUNIQ)
                        return attach_failed(a, r,
                                             "%s names more than one function in %s: give an offset instead",
                                             s->symbol, s->path);
                if (r < 0)
                        return attach_failed_errno(a->f, r, "libelf", "looking up %s in %s", s->symbol,
                                                   s->path);
        }

        r = pmu_type("uprobe", &type, a->kind->retprobe, &attr.config);
        if (r == -ENOENT)
                return attach_failed(a, -EOPNOTSUPP,
                                     "uprobes are not available on this kernel (no uprobe PMU in "
                                     "/sys/bus/event_source/devices: ENOENT)");
        if (r < 0)
                return attach_failed_errno(a->f, r, "open", "reading the uprobe PMU's type");
        attr.type = (uint32_t) type;
        attr.config1 = ptr_to_u64(fdpath); /* uprobe_path */
        attr.config2 = offset;             /* probe_offset */

        r = s->symbol ? asprintf(&target, "%s:%s", s->path, s->symbol)
                      : asprintf(&target, "%s:0x%llx", s->path, (unsigned long long) offset);
        if (r >= 0 && s->pid.set) {
                char *t = NULL;

                r = asprintf(&t, "%s pid %u", target, s->pid.value);
                free(target);
                target = t;
        }
        if (r < 0)
                return oom(a);
        pfd = perf_event_open_fd(&attr, s->pid.set ? (pid_t) s->pid.value : 0);
        if (pfd == -ESRCH)
                return attach_failed(a, pfd, "no process with pid %u", s->pid.value);
        if (pfd < 0)
                return attach_failed_errno(a->f, pfd, "perf_event_open", "probing %s", target);
        r = perf_link(a, pfd, target);
        if (r < 0)
                return r;
        a->target = TAKE_PTR(target);
        return 0;
}

/* The perf events a perf_event program can sample on, by perf(1)'s names. */
static const struct {
        const char *name;
        uint32_t type;
        uint64_t config;
} perf_events[] = {
        { "cpu-clock", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK },
        { "task-clock", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK },
        { "page-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS },
        { "minor-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MIN },
        { "major-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MAJ },
        { "context-switches", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CONTEXT_SWITCHES },
        { "cpu-migrations", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_MIGRATIONS },
        { "cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES },
        { "instructions", PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS },
        { "cache-misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES },
        { "branch-misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_BRANCH_MISSES },
};

/*
 * A sampling event: the program runs at each overflow, on one CPU (every
 * process there) or for one process (on every CPU). One link per event, so
 * sampling every CPU is one attachment per CPU.
 */
static int attach_perf_event(Attach *a) {
        _cleanup_close_ int pfd = -1;
        _cleanup_free_ char *target = NULL;
        const Spec *s = &a->spec;
        struct perf_event_attr attr = { .size = sizeof(attr) };
        const char *event = NULL;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(perf_events) && !event; i++)
                if (strcmp(s->event, perf_events[i].name) == 0) {
                        event = perf_events[i].name;
                        attr.type = perf_events[i].type;
                        attr.config = perf_events[i].config;
                }
        if (!event)
                return spec_invalid(a, "event",
                                    "unknown event '%.64s': cpu-clock, task-clock, page-faults, minor-faults, "
                                    "major-faults, context-switches, cpu-migrations, cycles, instructions, "
                                    "cache-misses or branch-misses",
                                    s->event);
        if (s->cpu.set == s->pid.set)
                return spec_invalid(a, s->cpu.set ? "pid" : "cpu",
                                    "give either cpu (every process on one CPU) or pid (one process)");
        if (s->frequency.set && s->period.set)
                return spec_invalid(a, "period", "give either frequency (Hz) or period (events), not both");
        if ((s->frequency.set && (s->frequency.value == 0 || s->frequency.value > UINT32_MAX)) ||
            (s->period.set && s->period.value == 0))
                return spec_invalid(a, s->period.set ? "period" : "frequency", "must be a positive number");
        if (s->period.set)
                attr.sample_period = s->period.value;
        else {
                /* perf record's default is 4000 Hz; a daemon-wide sampler should be gentler. */
                attr.freq = 1;
                attr.sample_freq = s->frequency.set ? s->frequency.value : 99;
        }
        if (s->pid.set) {
                r = check_pid(a, s->pid.value);
                if (r < 0)
                        return r;
        }

        r = asprintf(&target, "%s %s %u %s %llu%s", event, s->cpu.set ? "cpu" : "pid",
                     s->cpu.set ? s->cpu.value : s->pid.value, s->period.set ? "every" : "at",
                     (unsigned long long) (s->period.set ? attr.sample_period : attr.sample_freq),
                     s->period.set ? "" : " Hz");
        if (r < 0)
                return oom(a);
        pfd = (int) syscall(SYS_perf_event_open, &attr, s->pid.set ? (pid_t) s->pid.value : -1,
                            s->cpu.set ? (int) s->cpu.value : -1, -1, PERF_FLAG_FD_CLOEXEC);
        if (pfd < 0)
                pfd = negative_errno();
        if (pfd == -ENOENT || pfd == -EOPNOTSUPP)
                return attach_failed(a, pfd, "this machine has no %s event (no such PMU: %s)", event,
                                     strerror(-pfd));
        if (pfd == -ESRCH)
                return attach_failed(a, pfd, "no process with pid %u", s->pid.value);
        if (pfd == -ENODEV || (pfd == -EINVAL && s->cpu.set))
                return attach_failed(a, pfd, "no CPU %u online here (%s)", s->cpu.value, strerror(-pfd));
        if (pfd < 0)
                return attach_failed_errno(a->f, pfd, "perf_event_open", "opening %s", target);
        r = perf_link(a, pfd, target);
        if (r < 0)
                return r;
        a->target = TAKE_PTR(target);
        return 0;
}

static int attach_xdp(Attach *a) {
        static const struct {
                const char *name;
                uint32_t flags;
        } modes[] = {
                { "skb", XDP_FLAGS_SKB_MODE },
                { "drv", XDP_FLAGS_DRV_MODE },
                { "hw", XDP_FLAGS_HW_MODE },
        };
        _cleanup_(netns_leavep) int own_netns = -1;
        _cleanup_free_ char *target = NULL;
        const Spec *s = &a->spec;
        LIBBPF_OPTS(bpf_link_create_opts, opts);
        unsigned ifindex = 0;
        int fd, r;

        if (!interface_valid(s->interface))
                return spec_invalid(a, "interface", "'%.64s' is not an interface name", s->interface);
        if (s->mode) {
                size_t i;

                for (i = 0; i < ELEMENTSOF(modes) && strcmp(modes[i].name, s->mode) != 0; i++)
                        ;
                if (i == ELEMENTSOF(modes))
                        return spec_invalid(a, "mode", "mode is skb, drv or hw, not '%.64s'", s->mode);
                opts.flags = modes[i].flags;
        }
        if (s->mode ? asprintf(&target, "%s (%s mode)", s->interface, s->mode) < 0
                    : !(target = strdup(s->interface)))
                return oom(a);

        r = netns_enter(a, &own_netns);
        if (r < 0)
                return r;
        r = interface_index(a, s->interface, &ifindex);
        if (r < 0)
                return r;
        fd = bpf_link_create(a->prog_fd, (int) ifindex, BPF_XDP, &opts);
        if (fd < 0)
                return attach_failed_errno(a->f, fd, "bpf_link_create", "attaching XDP to %s", target);
        a->link_fd = fd;
        a->target = TAKE_PTR(target);
        return 0;
}

/*
 * Does this kernel have tcx (6.6 on)? Asked once, by a query that changes nothing: before tcx the
 * kernel refuses BPF_PROG_QUERY for the tcx attach types with EINVAL.
 */
static bool have_tcx(unsigned ifindex) {
        static int known = -1;
        __u32 count = 0;

        if (known < 0)
                known = bpf_prog_query((int) ifindex, BPF_TCX_INGRESS, 0, NULL, NULL, &count) != -EINVAL;
        return known;
}

static int attach_clsact(Attach *a, unsigned ifindex, bool egress, char **target) {
        const Spec *s = &a->spec;
        TcFilter t = {
                .ifindex = ifindex,
                .egress = egress,
                .handle = a->req->filter_id,
                .priority = s->priority.set ? s->priority.value : CLSACT_PRIORITY_DEFAULT,
        };
        struct stat st;
        char *with_mode = NULL;
        int r;

        if (a->req->filter_id < CLSACT_ID_MIN)
                return attach_failed(a, -EOPNOTSUPP, "attaching tc to %s through clsact needs an id for the "
                                     "filter, and this caller has none to give", *target);
        if (stat("/proc/thread-self/ns/net", &st) < 0)
                return failure_system(a->f, negative_errno(), "looking at the network namespace");
        t.netns = (uint64_t) st.st_ino;
        snprintf(t.interface, sizeof(t.interface), "%s", s->interface);
        if (asprintf(&with_mode, "%s (clsact)", *target) < 0)
                return oom(a);
        free(*target);
        *target = with_mode;

        if (a->req->before_filter) {
                r = a->req->before_filter(&t, a->req->userdata);
                if (r < 0)
                        return failure_system(a->f, r, "recording the tc filter on %s", *target);
        }
        r = clsact_attach(a->prog_fd, &t);
        if (r == -EEXIST)
                return attach_failed(a, r, "a tc filter with priority %u and handle 0x%x is on %s already",
                                     t.priority, t.handle, *target);
        if (r == -EINVAL)
                return attach_failed_errno(a->f, r, "bpf_tc_attach",
                                           "attaching a tc filter to %s at priority %u (is another kind of "
                                           "filter, or one for another protocol, at that priority?)",
                                           *target, t.priority);
        if (r < 0)
                return attach_failed_errno(a->f, r, "bpf_tc_attach", "attaching a tc filter to %s", *target);
        a->is_filter = true;
        a->filter = t;
        return 0;
}

static int attach_tc(Attach *a) {
        _cleanup_(netns_leavep) int own_netns = -1;
        _cleanup_free_ char *target = NULL;
        const Spec *s = &a->spec;
        enum bpf_attach_type type;
        bool clsact;
        unsigned ifindex = 0;
        int fd, r;

        if (!interface_valid(s->interface))
                return spec_invalid(a, "interface", "'%.64s' is not an interface name", s->interface);
        if (strcmp(s->direction, "ingress") == 0)
                type = BPF_TCX_INGRESS;
        else if (strcmp(s->direction, "egress") == 0)
                type = BPF_TCX_EGRESS;
        else
                return spec_invalid(a, "direction", "direction is ingress or egress, not '%.64s'",
                                    s->direction);
        if (s->mode && strcmp(s->mode, "tcx") != 0 && strcmp(s->mode, "clsact") != 0)
                return spec_invalid(a, "mode", "mode is tcx or clsact, not '%.64s'", s->mode);
        if (s->priority.set && (s->priority.value == 0 || s->priority.value > UINT16_MAX))
                return spec_invalid(a, "priority", "priority is 1 to 65535, not %u", s->priority.value);
        if (s->priority.set && s->mode && strcmp(s->mode, "tcx") == 0)
                return spec_invalid(a, "priority", "priority is for clsact filters: tcx links have none");
        if (asprintf(&target, "%s %s", s->interface, s->direction) < 0)
                return oom(a);

        r = netns_enter(a, &own_netns);
        if (r < 0)
                return r;
        r = interface_index(a, s->interface, &ifindex);
        if (r < 0)
                return r;
        clsact = s->mode ? strcmp(s->mode, "clsact") == 0 : !have_tcx(ifindex);
        if (!clsact && s->priority.set)
                return spec_invalid(a, "priority",
                                    "priority is for clsact filters, and this kernel has tcx: give mode clsact");
        if (!clsact && !have_tcx(ifindex))
                return attach_failed(a, -EOPNOTSUPP, "this kernel has no tcx (it came with 6.6): leave mode "
                                     "out or give clsact");
        if (clsact) {
                r = attach_clsact(a, ifindex, type == BPF_TCX_EGRESS, &target);
                if (r < 0)
                        return r;
                a->target = TAKE_PTR(target);
                return 0;
        }
        fd = bpf_link_create(a->prog_fd, (int) ifindex, type, NULL);
        if (fd < 0)
                return attach_failed_errno(a->f, fd, "bpf_link_create", "attaching tcx to %s", target);
        a->link_fd = fd;
        a->target = TAKE_PTR(target);
        return 0;
}

static int attach_cgroup(Attach *a) {
        _cleanup_close_ int cgroup = -1;
        _cleanup_free_ char *target = NULL;
        const Spec *s = &a->spec;
        enum bpf_attach_type type, expected;
        enum bpf_prog_type prog_type;
        const char *type_str;
        struct statfs sfs;
        int fd, r;

        if (!path_valid(s->path))
                return spec_invalid(a, "path", "'%.64s' is not an absolute path without '..'", s->path);
        /* libbpf's SEC() names for attach types; the cgroup ones are those the kernel calls cgroup_*. */
        if (strlen(s->attach_type) > ATTACH_TYPE_NAME_MAX ||
            libbpf_attach_type_by_name(s->attach_type, &type) < 0 ||
            libbpf_prog_type_by_name(s->attach_type, &prog_type, &expected) < 0 ||
            !(type_str = libbpf_bpf_attach_type_str(type)) || strncmp(type_str, "cgroup_", 7) != 0)
                return spec_invalid(
                        a, "attach_type",
                        "'%.64s' is not a cgroup attach type: cgroup_skb/ingress, cgroup_skb/egress, "
                        "cgroup/sock_create, cgroup/connect4, sockops, cgroup/dev, ...",
                        s->attach_type);
        if (a->info.type != prog_type)
                return attach_failed(a, -EINVAL, "program is %s, not a %s program (as %s needs)",
                                     libbpf_bpf_prog_type_str(a->info.type) ?: "unknown",
                                     libbpf_bpf_prog_type_str(prog_type) ?: "unknown", s->attach_type);
        if (asprintf(&target, "%s (%s)", s->path, s->attach_type) < 0)
                return oom(a);

        r = open_as_caller(a, s->path, O_RDONLY | O_DIRECTORY, "cgroup", &cgroup);
        if (r < 0)
                return r;
        if (fstatfs(cgroup, &sfs) < 0)
                return failure_system(a->f, negative_errno(), "statfs %s", s->path);
        if (sfs.f_type != CGROUP2_SUPER_MAGIC)
                return attach_failed(a, -ENOTDIR, "%s is not a cgroup2 directory", s->path);
        fd = bpf_link_create(a->prog_fd, cgroup, type, NULL);
        if (fd < 0)
                return attach_failed_errno(a->f, fd, "bpf_link_create", "attaching to cgroup %s", target);
        a->link_fd = fd;
        a->target = TAKE_PTR(target);
        return 0;
}

static const ParamField spec_none[] = { {} };

static const ParamField spec_tracepoint[] = {
        { "tracepoint", json_type_string, param_string, offsetof(Spec, tracepoint), true },
        {}
};

static const ParamField spec_kprobe[] = {
        { "function", json_type_string, param_string, offsetof(Spec, function) },
        { "offset", json_type_int, param_optional_uint64, offsetof(Spec, offset) },
        { "pattern", json_type_string, param_string, offsetof(Spec, pattern) },
        { "functions", json_type_array, param_strv, offsetof(Spec, functions) },
        {}
};

static const ParamField spec_uprobe[] = {
        { "path", json_type_string, param_string, offsetof(Spec, path), true },
        { "symbol", json_type_string, param_string, offsetof(Spec, symbol) },
        { "offset", json_type_int, param_optional_uint64, offsetof(Spec, offset) },
        { "pid", json_type_int, param_optional_uint32, offsetof(Spec, pid) },
        {}
};

static const ParamField spec_xdp[] = {
        { "interface", json_type_string, param_string, offsetof(Spec, interface), true },
        { "mode", json_type_string, param_string, offsetof(Spec, mode) },
        {}
};

static const ParamField spec_tc[] = {
        { "interface", json_type_string, param_string, offsetof(Spec, interface), true },
        { "direction", json_type_string, param_string, offsetof(Spec, direction), true },
        { "mode", json_type_string, param_string, offsetof(Spec, mode) },
        { "priority", json_type_int, param_optional_uint32, offsetof(Spec, priority) },
        {}
};

static const ParamField spec_cgroup[] = {
        { "path", json_type_string, param_string, offsetof(Spec, path), true },
        { "attach_type", json_type_string, param_string, offsetof(Spec, attach_type), true },
        {}
};

static const ParamField spec_perf_event[] = {
        { "event", json_type_string, param_string, offsetof(Spec, event), true },
        { "cpu", json_type_int, param_optional_uint32, offsetof(Spec, cpu) },
        { "pid", json_type_int, param_optional_uint32, offsetof(Spec, pid) },
        { "frequency", json_type_int, param_optional_uint64, offsetof(Spec, frequency) },
        { "period", json_type_int, param_optional_uint64, offsetof(Spec, period) },
        {}
};

static const AttachKind kinds[] = {
        { "tracepoint", BPF_PROG_TYPE_TRACEPOINT, 0, spec_tracepoint, attach_tracepoint },
        { "raw_tp", BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE, spec_tracepoint,
          attach_raw_tp },
        { "tp_btf", BPF_PROG_TYPE_TRACING, 0, spec_none, attach_btf, BPF_TRACE_RAW_TP },
        { "fentry", BPF_PROG_TYPE_TRACING, 0, spec_none, attach_btf, BPF_TRACE_FENTRY },
        { "fexit", BPF_PROG_TYPE_TRACING, 0, spec_none, attach_btf, BPF_TRACE_FEXIT },
        { "fmod_ret", BPF_PROG_TYPE_TRACING, 0, spec_none, attach_btf, BPF_MODIFY_RETURN },
        { "lsm", BPF_PROG_TYPE_LSM, 0, spec_none, attach_btf, BPF_LSM_MAC },
        { "kprobe", BPF_PROG_TYPE_KPROBE, 0, spec_kprobe, attach_kprobe },
        { "kretprobe", BPF_PROG_TYPE_KPROBE, 0, spec_kprobe, attach_kprobe, .retprobe = true },
        { "uprobe", BPF_PROG_TYPE_KPROBE, 0, spec_uprobe, attach_uprobe },
        { "uretprobe", BPF_PROG_TYPE_KPROBE, 0, spec_uprobe, attach_uprobe, .retprobe = true },
        { "xdp", BPF_PROG_TYPE_XDP, 0, spec_xdp, attach_xdp },
        { "tc", BPF_PROG_TYPE_SCHED_CLS, 0, spec_tc, attach_tc },
        { "cgroup", BPF_PROG_TYPE_UNSPEC, 0, spec_cgroup, attach_cgroup },
        { "perf_event", BPF_PROG_TYPE_PERF_EVENT, 0, spec_perf_event, attach_perf_event },
};

static int unknown_type(const char *type, Failure *f) {
        char names[256] = "";

        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                if (i > 0)
                        strcat(names, ", ");
                strcat(names, kinds[i].name);
        }
        return failure_invalid_parameter(f, -EINVAL, "type", "unknown attach type '%.64s': one of %s", type,
                                         names);
}

/* The spec by the kind's table; params' varlink error becomes ours, naming "<type>.<field>". */
static int decode_spec(Attach *a) {
        Failure inner = {};
        json_object *p;
        const char *field = "spec", *message = "invalid";
        int r;

        if (a->req->spec && !json_object_is_type(a->req->spec, json_type_object))
                return failure_invalid_parameter(a->f, -EINVAL, a->kind->name,
                                                 "the %s target must be an object", a->kind->name);
        r = params_decode(a->req->spec, a->kind->spec, &a->spec, &inner);
        if (r >= 0)
                return 0;
        if (json_object_object_get_ex(inner.parameters, "parameter", &p))
                field = json_object_get_string(p);
        if (json_object_object_get_ex(inner.parameters, "message", &p))
                message = json_object_get_string(p);
        r = spec_invalid(a, field, "%s", message);
        failure_done(&inner);
        return r;
}

static int check_program_type(const Attach *a, Failure *f) {
        const AttachKind *k = a->kind;

        if (k->prog_type == BPF_PROG_TYPE_UNSPEC || a->info.type == k->prog_type ||
            (k->prog_type_alt != BPF_PROG_TYPE_UNSPEC && a->info.type == k->prog_type_alt))
                return 0;
        return failure_setf(f, -EINVAL, VL_ERROR_ATTACH_FAILED, "message", "program is %s, not a %s program",
                            libbpf_bpf_prog_type_str(a->info.type) ?: "unknown", k->name);
}

int attach_program(int prog_fd, const AttachRequest *req, AttachResult *ret, Failure *f) {
        _cleanup_close_ int link_fd = -1;
        _cleanup_free_ char *target = NULL, *type = NULL;
        Attach a = { .req = req, .prog_fd = prog_fd, .f = f, .link_fd = -1 };
        struct bpf_link_info link = {};
        __u32 len = sizeof(a.info);
        int r;

        for (size_t i = 0; i < ELEMENTSOF(kinds) && !a.kind; i++)
                if (req->type && strcmp(req->type, kinds[i].name) == 0)
                        a.kind = &kinds[i];
        if (!a.kind)
                return unknown_type(req->type ?: "", f);
        if (req->caller_pid < 0)
                return failure_invalid_parameter(f, -EINVAL, "caller_pid", "negative pid %d",
                                                 (int) req->caller_pid);

        r = bpf_prog_get_info_by_fd(prog_fd, &a.info, &len);
        if (r < 0)
                return failure_system(f, r, "reading the program's info");
        r = decode_spec(&a);
        if (r < 0)
                return r;
        r = check_program_type(&a, f);
        if (r < 0)
                return r;

        r = a.kind->attach(&a);
        if (r < 0)
                return r;
        target = a.target;
        if (a.is_filter) {
                type = strdup(a.kind->name);
                if (!type) {
                        (void) clsact_detach(&a.filter, a.info.id);
                        return failure_system(f, -ENOMEM, "attaching as %s", a.kind->name);
                }
                *ret = (AttachResult) {
                        .link_fd = -1,
                        .link_id = a.filter.handle,
                        .is_filter = true,
                        .filter = a.filter,
                        .type = TAKE_PTR(type),
                        .target = TAKE_PTR(target),
                };
                return 0;
        }
        link_fd = a.link_fd;

        len = sizeof(link);
        r = bpf_link_get_info_by_fd(link_fd, &link, &len);
        if (r < 0)
                return failure_system(f, r, "reading the new link's info");
        type = strdup(a.kind->name);
        if (!type)
                return failure_system(f, -ENOMEM, "attaching as %s", a.kind->name);

        *ret = (AttachResult) {
                .link_fd = TAKE_FD(link_fd),
                .link_id = link.id,
                .type = TAKE_PTR(type),
                .target = TAKE_PTR(target),
        };
        return 0;
}

void attach_result_done(AttachResult *r) {
        safe_close(r->link_fd);
        free(r->type);
        free(r->target);
        *r = (AttachResult) ATTACH_RESULT_NULL;
}

typedef enum SectionTarget {
        SECTION_NONE,       /* fixed at load: {} */
        SECTION_TRACEPOINT, /* category/name */
        SECTION_RAW_TP,     /* name */
        SECTION_KPROBE,     /* function[+offset] */
        SECTION_KPROBE_MULTI, /* pattern */
        SECTION_UPROBE,     /* /path:symbol */
} SectionTarget;

int attach_spec_from_section(const char *section, const char **ret_type, json_object **ret_spec) {
        /* libbpf's auto-attachable SEC() prefixes; everything else needs a target from the caller. */
        static const struct {
                const char *prefix;
                const char *type;
                SectionTarget target;
        } table[] = {
                { "tracepoint/", "tracepoint", SECTION_TRACEPOINT },
                { "tp/", "tracepoint", SECTION_TRACEPOINT },
                { "raw_tracepoint/", "raw_tp", SECTION_RAW_TP },
                { "raw_tp/", "raw_tp", SECTION_RAW_TP },
                { "raw_tracepoint.w/", "raw_tp", SECTION_RAW_TP },
                { "raw_tp.w/", "raw_tp", SECTION_RAW_TP },
                { "tp_btf/", "tp_btf", SECTION_NONE },
                { "fentry/", "fentry", SECTION_NONE },
                { "fentry.s/", "fentry", SECTION_NONE },
                { "fexit/", "fexit", SECTION_NONE },
                { "fexit.s/", "fexit", SECTION_NONE },
                { "fmod_ret/", "fmod_ret", SECTION_NONE },
                { "fmod_ret.s/", "fmod_ret", SECTION_NONE },
                { "lsm/", "lsm", SECTION_NONE },
                { "lsm.s/", "lsm", SECTION_NONE },
                { "kprobe/", "kprobe", SECTION_KPROBE },
                { "kretprobe/", "kretprobe", SECTION_KPROBE },
                { "kprobe.multi/", "kprobe", SECTION_KPROBE_MULTI },
                { "kretprobe.multi/", "kretprobe", SECTION_KPROBE_MULTI },
                { "uprobe/", "uprobe", SECTION_UPROBE },
                { "uprobe.s/", "uprobe", SECTION_UPROBE },
                { "uretprobe/", "uretprobe", SECTION_UPROBE },
                { "uretprobe.s/", "uretprobe", SECTION_UPROBE },
        };
        _cleanup_(json_object_putp) json_object *spec = NULL;
        const char *rest = NULL, *type = NULL, *sep;
        SectionTarget target = SECTION_NONE;

        if (!section)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(table) && !type; i++)
                if (strncmp(section, table[i].prefix, strlen(table[i].prefix)) == 0) {
                        rest = section + strlen(table[i].prefix);
                        type = table[i].type;
                        target = table[i].target;
                }
        if (!type)
                return -ENOTSUP;
        if (!*rest)
                return -EINVAL;

        spec = json_object_new_object();
        if (!spec)
                return -ENOMEM;
        switch (target) {
        case SECTION_NONE:
                break;
        case SECTION_TRACEPOINT:
                sep = strchr(rest, '/');
                if (!sep || sep == rest || !sep[1])
                        return -EINVAL;
                json_object_object_add(spec, "tracepoint", json_object_new_string(rest));
                break;
        case SECTION_RAW_TP:
                json_object_object_add(spec, "tracepoint", json_object_new_string(rest));
                break;
        case SECTION_KPROBE:
                sep = strchr(rest, '+');
                if (sep) {
                        char *end;
                        unsigned long long offset;

                        errno = 0;
                        offset = strtoull(sep + 1, &end, 0);
                        if (sep == rest || !sep[1] || *end || errno != 0 || strcmp(type, "kretprobe") == 0)
                                return -EINVAL;
                        json_object_object_add(spec, "function",
                                               json_object_new_string_len(rest, (int) (sep - rest)));
                        json_object_object_add(spec, "offset", json_object_new_uint64(offset));
                } else
                        json_object_object_add(spec, "function", json_object_new_string(rest));
                break;
        case SECTION_KPROBE_MULTI:
                json_object_object_add(spec, "pattern", json_object_new_string(rest));
                break;
        case SECTION_UPROBE:
                sep = strchr(rest, ':');
                if (!sep || sep == rest || !sep[1])
                        return -EINVAL;
                /* libbpf would search library paths for a bare name; the daemon does not guess. */
                if (rest[0] != '/')
                        return -ENOTSUP;
                json_object_object_add(spec, "path", json_object_new_string_len(rest, (int) (sep - rest)));
                json_object_object_add(spec, "symbol", json_object_new_string(sep + 1));
                break;
        }
        *ret_type = type;
        *ret_spec = TAKE_PTR(spec);
        return 0;
}
