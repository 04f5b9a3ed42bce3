/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach-target.h"
#include "macro.h"

typedef struct AttachType AttachType;

typedef struct Words {
        char *const *args; /* the target words, counted and non-empty */
        int n;
        int64_t pid;       /* > 0 for --pid */
        const char *cwd;
        char **error;
} Words;

struct AttachType {
        const char *name;
        const char *target; /* what follows TYPE, for errors; NULL: nothing */
        int min_args, max_args;
        int (*build)(const AttachType *t, const Words *w, json_object **ret);
};

static void json_object_putp(json_object **o) {
        json_object_put(*o);
}

_printf_(2, 3) static int fail(const Words *w, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(w->error, fmt, ap) < 0)
                *w->error = NULL;
        va_end(ap);
        return -EINVAL;
}

/* Adds value (owned; NULL after a failed allocation) to o under key. */
static int add(json_object *o, const char *key, json_object *value) {
        if (!value || json_object_object_add(o, key, value) < 0) {
                json_object_put(value);
                return -ENOMEM;
        }
        return 0;
}

/* Relative paths are the caller's: the daemon resolves paths in the caller's mount namespace, not its cwd. */
static int add_path(const Words *w, json_object *o, const char *key, const char *path) {
        _cleanup_free_ char *abs = NULL;

        if (path[0] != '/') {
                if (!w->cwd)
                        return fail(w, "%s must be an absolute path, not '%s'", key, path);
                while (path[0] == '.' && path[1] == '/')
                        path += 2 + strspn(path + 2, "/");
                if (asprintf(&abs, "%s%s%s", w->cwd, strcmp(w->cwd, "/") == 0 ? "" : "/", path) < 0)
                        return -ENOMEM;
                path = abs;
        }
        return add(o, key, json_object_new_string(path));
}

int parse_u64(const char *s, uint64_t *ret) {
        unsigned long long v;
        int base = 10;
        char *end;

        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                base = 16;
                s += 2;
        }
        if (!(base == 16 ? isxdigit((unsigned char) s[0]) : isdigit((unsigned char) s[0])))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, base);
        if (*end)
                return -EINVAL;
        if (errno == ERANGE)
                return -ERANGE;
        *ret = v;
        return 0;
}

/* A number up to INT64_MAX: 0 when s is one, 1 when s is no number, -EINVAL (said) when out of range. */
static int parse_number(const AttachType *t, const Words *w, const char *s, int64_t *ret) {
        uint64_t v;
        int r = parse_u64(s, &v);

        if (r == -EINVAL)
                return 1;
        if (r < 0 || v > INT64_MAX)
                return fail(w, "%s: %s is out of range", t->name, s);
        *ret = (int64_t) v;
        return 0;
}

/* "skb|drv|hw" → true when s is one of them. */
static bool one_of(const char *s, const char *words) {
        size_t n = strlen(s);

        for (const char *p = words; n > 0 && *p; p += strcspn(p, "|"), p += *p == '|')
                if (strncmp(p, s, n) == 0 && (p[n] == '|' || p[n] == '\0'))
                        return true;
        return false;
}

static int build_tracepoint(const AttachType *t, const Words *w, json_object **ret) {
        const char *slash = strchr(w->args[0], '/');

        if (!slash || slash == w->args[0] || !slash[1])
                return fail(w, "tracepoint takes %s, got '%s'", t->target, w->args[0]);
        *ret = json_object_new_string(w->args[0]);
        return *ret ? 0 : -ENOMEM;
}

static int build_raw_tp(const AttachType *t, const Words *w, json_object **ret) {
        _cleanup_(json_object_putp) json_object *spec = json_object_new_object();

        if (!spec || add(spec, "tracepoint", json_object_new_string(w->args[0])) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(spec);
        return 0;
}

/* tp_btf, fentry, ...: the target was fixed at load (the program's attach BTF id). */
static int build_none(const AttachType *t, const Words *w, json_object **ret) {
        *ret = json_object_new_object();
        return *ret ? 0 : -ENOMEM;
}

/* A multi-kprobe: FUNC with glob characters is a pattern, "f,g,h" a list; neither takes an offset. */
static int build_kprobe_multi(const AttachType *t, const Words *w, json_object **ret) {
        _cleanup_(json_object_putp) json_object *spec = json_object_new_object(), *list = NULL;
        const char *s = w->args[0];

        if (w->n > 1)
                return fail(w, "%s: a pattern or a list of functions takes no offset", t->name);
        if (!spec)
                return -ENOMEM;
        if (!strchr(s, ',')) {
                if (add(spec, "pattern", json_object_new_string(s)) < 0)
                        return -ENOMEM;
                *ret = TAKE_PTR(spec);
                return 0;
        }
        list = json_object_new_array();
        if (!list)
                return -ENOMEM;
        for (const char *p = s;; p++) {
                size_t n = strcspn(p, ",");

                if (n == 0)
                        return fail(w, "%s: empty function name in '%s'", t->name, s);
                if (json_object_array_add(list, json_object_new_string_len(p, (int) n)) < 0)
                        return -ENOMEM;
                p += n;
                if (!*p)
                        break;
        }
        if (add(spec, "functions", TAKE_PTR(list)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(spec);
        return 0;
}

static int build_kprobe(const AttachType *t, const Words *w, json_object **ret) {
        _cleanup_(json_object_putp) json_object *spec = NULL;
        int64_t offset = 0;
        int r;

        if (strpbrk(w->args[0], "*?[,"))
                return build_kprobe_multi(t, w, ret);
        spec = json_object_new_object();
        if (!spec || add(spec, "function", json_object_new_string(w->args[0])) < 0)
                return -ENOMEM;
        if (w->n > 1) {
                r = parse_number(t, w, w->args[1], &offset);
                if (r < 0)
                        return r;
                if (r > 0)
                        return fail(w, "%s: invalid offset '%s'", t->name, w->args[1]);
                if (add(spec, "offset", json_object_new_int64(offset)) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(spec);
        return 0;
}

/* SYMBOL|OFFSET: a number is a file offset, anything else a symbol. */
static int build_uprobe(const AttachType *t, const Words *w, json_object **ret) {
        _cleanup_(json_object_putp) json_object *spec = json_object_new_object();
        int64_t offset = 0;
        int r;

        if (!spec)
                return -ENOMEM;
        r = add_path(w, spec, "path", w->args[0]);
        if (r < 0)
                return r;
        r = parse_number(t, w, w->args[1], &offset);
        if (r < 0)
                return r;
        if (r == 0)
                r = add(spec, "offset", json_object_new_int64(offset));
        else
                r = add(spec, "symbol", json_object_new_string(w->args[1]));
        if (r < 0 || (w->pid > 0 && add(spec, "pid", json_object_new_int64(w->pid)) < 0))
                return -ENOMEM;
        *ret = TAKE_PTR(spec);
        return 0;
}

static int build_xdp(const AttachType *t, const Words *w, json_object **ret) {
        _cleanup_(json_object_putp) json_object *spec = json_object_new_object();

        if (w->n > 1 && !one_of(w->args[1], "skb|drv|hw"))
                return fail(w, "xdp: invalid mode '%s' (skb, drv or hw)", w->args[1]);
        if (!spec || add(spec, "interface", json_object_new_string(w->args[0])) < 0 ||
            (w->n > 1 && add(spec, "mode", json_object_new_string(w->args[1])) < 0))
                return -ENOMEM;
        *ret = TAKE_PTR(spec);
        return 0;
}

static int build_tc(const AttachType *t, const Words *w, json_object **ret) {
        _cleanup_(json_object_putp) json_object *spec = json_object_new_object();

        int64_t priority = 0;

        if (!one_of(w->args[1], "ingress|egress"))
                return fail(w, "tc: invalid direction '%s' (ingress or egress)", w->args[1]);
        if (w->n > 2 && !one_of(w->args[2], "tcx|clsact"))
                return fail(w, "tc: invalid mode '%s' (tcx or clsact)", w->args[2]);
        if (w->n > 3) {
                int r = strncmp(w->args[3], "prio=", 5) == 0 ? parse_number(t, w, w->args[3] + 5, &priority) : 1;

                if (r < 0)
                        return r;
                if (r > 0)
                        return fail(w, "tc: '%s' is not prio=N", w->args[3]);
        }
        if (!spec || add(spec, "interface", json_object_new_string(w->args[0])) < 0 ||
            add(spec, "direction", json_object_new_string(w->args[1])) < 0 ||
            (w->n > 2 && add(spec, "mode", json_object_new_string(w->args[2])) < 0) ||
            (w->n > 3 && add(spec, "priority", json_object_new_int64(priority)) < 0))
                return -ENOMEM;
        *ret = TAKE_PTR(spec);
        return 0;
}

static int build_cgroup(const AttachType *t, const Words *w, json_object **ret) {
        _cleanup_(json_object_putp) json_object *spec = json_object_new_object();
        int r;

        if (!spec)
                return -ENOMEM;
        r = add_path(w, spec, "path", w->args[0]);
        if (r < 0)
                return r;
        if (add(spec, "attach_type", json_object_new_string(w->args[1])) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(spec);
        return 0;
}

/* EVENT cpu=N|pid=N [freq=HZ|period=N]: the words become the fields of the same names. */
static int build_perf_event(const AttachType *t, const Words *w, json_object **ret) {
        _cleanup_(json_object_putp) json_object *spec = json_object_new_object();
        static const struct {
                const char *word, *field;
        } keys[] = { { "cpu", "cpu" }, { "pid", "pid" }, { "freq", "frequency" }, { "period", "period" } };
        int r;

        if (!spec || add(spec, "event", json_object_new_string(w->args[0])) < 0)
                return -ENOMEM;
        for (int i = 1; i < w->n; i++) {
                const char *eq = strchr(w->args[i], '=');
                const char *field = NULL;
                int64_t v = 0;

                for (size_t k = 0; eq && k < ELEMENTSOF(keys) && !field; k++)
                        if (strlen(keys[k].word) == (size_t) (eq - w->args[i]) &&
                            strncmp(w->args[i], keys[k].word, (size_t) (eq - w->args[i])) == 0)
                                field = keys[k].field;
                if (!field)
                        return fail(w, "perf_event takes %s, not '%s'", t->target, w->args[i]);
                r = parse_number(t, w, eq + 1, &v);
                if (r < 0)
                        return r;
                if (r > 0)
                        return fail(w, "perf_event: '%s' is not a number", w->args[i]);
                if (json_object_object_get_ex(spec, field, NULL))
                        return fail(w, "perf_event: %.*s is given twice", (int) (eq - w->args[i]), w->args[i]);
                if (add(spec, field, json_object_new_int64(v)) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(spec);
        return 0;
}

static const AttachType attach_types[] = {
        { "tracepoint", "CAT/NAME",                 1, 1, build_tracepoint },
        { "raw_tp",     "NAME",                     1, 1, build_raw_tp     },
        { "tp_btf",     NULL,                       0, 0, build_none       },
        { "fentry",     NULL,                       0, 0, build_none       },
        { "fexit",      NULL,                       0, 0, build_none       },
        { "fmod_ret",   NULL,                       0, 0, build_none       },
        { "lsm",        NULL,                       0, 0, build_none       },
        { "kprobe",     "FUNC [OFFSET] | GLOB | F,G,...", 1, 2, build_kprobe },
        { "kretprobe",  "FUNC [OFFSET] | GLOB | F,G,...", 1, 2, build_kprobe },
        { "uprobe",     "PATH SYMBOL|OFFSET",       2, 2, build_uprobe     },
        { "uretprobe",  "PATH SYMBOL|OFFSET",       2, 2, build_uprobe     },
        { "xdp",        "IFACE [skb|drv|hw]",       1, 2, build_xdp        },
        { "tc",         "IFACE ingress|egress [tcx|clsact [prio=N]]", 2, 4, build_tc },
        { "cgroup",     "PATH ATTACH_TYPE",         2, 2, build_cgroup     },
        { "perf_event", "EVENT cpu=N|pid=N [freq=HZ|period=N]", 2, 3, build_perf_event },
};

int attach_target_parse(const char *type, char *const *args, int n, int64_t pid, const char *cwd,
                        const char **ret_type, json_object **ret_target, char **ret_error) {
        Words w = { .args = args, .n = n, .pid = pid, .cwd = cwd, .error = ret_error };
        const AttachType *t = NULL;
        int r;

        *ret_error = NULL;
        for (size_t i = 0; i < ELEMENTSOF(attach_types) && !t; i++)
                if (strcmp(attach_types[i].name, type) == 0)
                        t = &attach_types[i];
        if (!t) {
                char names[256] = "";
                size_t k = 0;

                for (size_t i = 0; i < ELEMENTSOF(attach_types) && k < sizeof(names); i++) {
                        int m = snprintf(names + k, sizeof(names) - k, "%s%s", i > 0 ? ", " : "",
                                         attach_types[i].name);
                        if (m < 0)
                                break;
                        k += (size_t) m;
                }
                return fail(&w, "unknown TYPE '%s' (%s)", type, names);
        }
        if (n < t->min_args || n > t->max_args) {
                if (!t->target)
                        return fail(&w, "%s takes no TARGET: it was fixed when the program was loaded", t->name);
                return fail(&w, "%s takes %s", t->name, t->target);
        }
        for (int i = 0; i < n; i++)
                if (!*args[i])
                        return fail(&w, "%s takes %s, not an empty argument", t->name, t->target);
        if (pid > 0 && t->build != build_uprobe)
                return fail(&w, "--pid applies to uprobe and uretprobe only");

        r = t->build(t, &w, ret_target);
        if (r < 0)
                return r;
        *ret_type = t->name;
        return 0;
}
