/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The method handlers of io.bpfcored and org.varlink.service. */
#include <bpf/bpf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

#include "attach.h"
#include "btf-targets.h"
#include "btf-describe.h"
#include "crash-point.h"
#include "events.h"
#include "loader.h"
#include "map-codec.h"
#include "methods.h"
#include "log.h"
#include "params.h"
#include "policy.h"
#include "prog-batch.h"
#include "state.h"
#include "protocol.h"
#include "varlink.h"

#define OBJECT_NAME_MAX 64

static const char varlink_service_description[] =
        "interface org.varlink.service\n"
        "\n"
        "method GetInfo() -> (\n"
        "  vendor: string,\n"
        "  product: string,\n"
        "  version: string,\n"
        "  url: string,\n"
        "  interfaces: []string\n"
        ")\n"
        "\n"
        "method GetInterfaceDescription(interface: string) -> (description: string)\n"
        "\n"
        "error InterfaceNotFound (interface: string)\n"
        "error MethodNotFound (method: string)\n"
        "error MethodNotImplemented (method: string)\n"
        "error InvalidParameter (parameter: string)\n"
        "error PermissionDenied ()\n"
        "error ExpectedMore ()\n";

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static int reply_failure(Call *call, Failure *f) {
        json_object *p = TAKE_PTR(f->parameters);

        return vl_error(call, f->error, p);
}

static int decode(Call *call, const ParamField table[], void *base) {
        Failure f = {};
        int r = params_decode(call->parameters, table, base, &f);

        if (r < 0) {
                int q = reply_failure(call, &f);
                failure_done(&f);
                return q < 0 ? q : r;
        }
        return 0;
}

/* Like decode(), for tables whose json_type_null fields take any JSON value (keys and values of maps). */
static int decode_any(Call *call, const ParamField table[], void *base, json_object **ret_key,
                      json_object **ret_value) {
        int r = decode(call, table, base);

        if (r != 0)
                return r;
        if (!json_object_object_get_ex(call->parameters, "key", ret_key))
                *ret_key = NULL;
        if (ret_value && !json_object_object_get_ex(call->parameters, "value", ret_value))
                *ret_value = NULL;
        return 0;
}

/* An error reply: p (taken) gets key set to the formatted text. */
static int reply_vformat(Call *call, const char *error, json_object *p, const char *key, const char *fmt, va_list ap)
        _printf_(5, 0);
static int reply_vformat(Call *call, const char *error, json_object *p, const char *key, const char *fmt, va_list ap) {
        _cleanup_free_ char *s = NULL;

        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        json_object_object_add(p, key, json_object_new_string(s ?: ""));
        return vl_error(call, error, p);
}

static int reply_errorf(Call *call, const char *error, const char *key, const char *fmt, ...) _printf_(4, 5);
static int reply_errorf(Call *call, const char *error, const char *key, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = reply_vformat(call, error, json_object_new_object(), key, fmt, ap);
        va_end(ap);
        return r;
}

/* TooLarge {limit, message}: which limit, and what went past it. */
static int reply_too_large(Call *call, const char *limit, const char *fmt, ...) _printf_(3, 4);
static int reply_too_large(Call *call, const char *limit, const char *fmt, ...) {
        json_object *p = json_object_new_object();
        va_list ap;
        int r;

        json_object_object_add(p, "limit", json_object_new_string(limit));
        va_start(ap, fmt);
        r = reply_vformat(call, VL_ERROR_TOO_LARGE, p, "message", fmt, ap);
        va_end(ap);
        return r;
}

static int reply_invalid_parameter(Call *call, const char *parameter, const char *message) {
        json_object *p = json_object_new_object();

        json_object_object_add(p, "parameter", json_object_new_string(parameter));
        json_object_object_add(p, "message", json_object_new_string(message));
        return vl_error(call, VL_ERROR_INVALID_PARAMETER, p);
}

static int reply_no_such_object(Call *call, uint64_t id) {
        json_object *p = json_object_new_object();

        json_object_object_add(p, "id", json_object_new_uint64(id));
        return vl_error(call, VL_ERROR_NO_SUCH_OBJECT, p);
}

/* Admins see every object; others only their own, and another's answers like a missing one. */
static bool may_see(Call *call, const Object *o) {
        return policy_is_admin(call->manager->policy, call->peer) || o->owner.uid == call->peer->cred.uid;
}

static Object *visible_object(Call *call, uint64_t id) {
        Object *o = registry_get(call->manager->registry, id);

        return o && may_see(call, o) ? o : NULL;
}

static void log_denied(Call *call, const char *reason) {
        LogFields lf = {};

        call->manager->counters.denied++;
        log_field(&lf, "BPFCORED_CLIENT_UID", "%u", call->peer->cred.uid);
        log_field(&lf, "BPFCORED_CLIENT_PID", "%d", call->peer->cred.pid);
        log_field(&lf, "BPFCORED_CLIENT_CGROUP", "%s", call->peer->cgroup ?: "");
        log_field(&lf, "BPFCORED_ERROR", "%s", reason);
        log_event(&lf, LOG_NOTICE, MESSAGE_ID_DENIED, "Denied %s to uid %u: %s", call->method, call->peer->cred.uid,
                  reason);
}

static int reply_denied(Call *call, const char *fmt, ...) _printf_(2, 3);
static int reply_denied(Call *call, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        json_object *p = json_object_new_object();
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        log_denied(call, s ?: "denied");
        json_object_object_add(p, "reason", json_object_new_string(s ?: "denied"));
        return vl_error(call, VL_ERROR_PERMISSION_DENIED, p);
}

static bool object_name_valid(const char *s) {
        size_t n = strlen(s);

        return n > 0 && n <= OBJECT_NAME_MAX &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* A name from what the fd was opened as: "execsnoop.bpf.o" or "memfd:execsnoop" gives "execsnoop". */
static char *object_name_from_fd(int fd) {
        char proc[64], target[4096];
        const char *base;
        char *name, *p;
        ssize_t n;
        size_t len;

        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        n = readlink(proc, target, sizeof(target) - 1);
        if (n <= 0)
                return strdup("object");
        target[n] = 0;
        if ((p = strstr(target, " (deleted)")) && p[10] == 0)
                *p = 0;
        base = strrchr(target, '/');
        base = base ? base + 1 : target;
        if (strncmp(base, "memfd:", 6) == 0)
                base += 6;
        name = strndup(base, OBJECT_NAME_MAX);
        if (!name)
                return NULL;
        len = strlen(name);
        if (len > 6 && strcmp(name + len - 6, ".bpf.o") == 0)
                name[len - 6] = 0;
        else if (len > 2 && strcmp(name + len - 2, ".o") == 0)
                name[len - 2] = 0;
        for (p = name; *p; p++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *p))
                        *p = '_';
        if (!*name) {
                free(name);
                return strdup("object");
        }
        return name;
}

/* Reads the object from the caller's fd (a large one sparsely: loader_read()); the file may change under
 * us, so never mmap it. *ret_st (if given) is the file as it was read, or all zero if it changed meanwhile. */
static int read_object(Call *call, int fd, const char *param, bool sparse, ObjectBytes *ret, struct stat *ret_st) {
        struct stat st, after;
        int r;

        if (fstat(fd, &st) < 0)
                return reply_invalid_parameter(call, param, "the passed file descriptor cannot be examined");
        if (S_ISDIR(st.st_mode))
                return reply_invalid_parameter(call, param, "the passed fd is a directory: pass an open file or a memfd");
        if (!S_ISREG(st.st_mode))
                return reply_invalid_parameter(call, param, "the passed fd is not a regular file or memfd");
        if ((uint64_t) st.st_size > VL_MAX_OBJECT)
                return reply_too_large(call, "object_size", "the object has %lld bytes, at most %u are accepted",
                                       (long long) st.st_size, VL_MAX_OBJECT);
        r = sparse ? loader_read(fd, (size_t) st.st_size, ret) : loader_read_whole(fd, (size_t) st.st_size, ret);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return reply_invalid_parameter(call, param, r == -EBADF ? "the passed fd is not open for reading"
                                                                        : "reading the passed fd failed");
        if (ret_st) {
                bool same = fstat(fd, &after) == 0 && loader_file_unchanged(&st, &after) &&
                            (size_t) st.st_size == ret->size;

                *ret_st = same ? st : (struct stat) {};
        }
        return 1;
}

static void log_load_failure(const Peer *peer, const char *name, const Failure *f) {
        LogFields lf = {};
        json_object *m = NULL;
        const char *detail = "";

        if (f->parameters && (json_object_object_get_ex(f->parameters, "message", &m) ||
                              json_object_object_get_ex(f->parameters, "reason", &m) ||
                              json_object_object_get_ex(f->parameters, "limit", &m) ||
                              json_object_object_get_ex(f->parameters, "program", &m)))
                detail = json_object_get_string(m);
        log_field(&lf, "BPFCORED_OBJECT_NAME", "%s", name);
        log_field(&lf, "BPFCORED_ERROR", "%s", f->error);
        log_field(&lf, "BPFCORED_ERROR_MESSAGE", "%.200s", detail);
        log_field(&lf, "BPFCORED_CLIENT_UID", "%u", peer->cred.uid);
        log_field(&lf, "BPFCORED_CLIENT_PID", "%d", peer->cred.pid);
        log_field(&lf, "BPFCORED_CLIENT_CGROUP", "%s", peer->cgroup ?: "");
        /* What the rules refuse is a denial, whichever step of the load found it (a program type, say). */
        log_event(&lf, strcmp(f->error, VL_ERROR_PERMISSION_DENIED) == 0 ? LOG_NOTICE : LOG_WARNING,
                  strcmp(f->error, VL_ERROR_PERMISSION_DENIED) == 0 ? MESSAGE_ID_DENIED : MESSAGE_ID_LOAD_FAILED,
                  "Load of %s for uid %u failed: %s: %.200s", name, peer->cred.uid, f->error, detail);
}

static void log_loaded(const Object *o) {
        LogFields lf = {};
        char ids[256] = "";
        size_t off = 0;

        for (size_t i = 0; i < o->n_programs && off < sizeof(ids) - 12; i++)
                off += (size_t) snprintf(ids + off, sizeof(ids) - off, "%s%u", i ? " " : "", o->programs[i].id);
        log_field(&lf, "BPFCORED_OBJECT_ID", "%llu", (unsigned long long) o->id);
        log_field(&lf, "BPFCORED_OBJECT_NAME", "%s", o->name);
        log_field(&lf, "BPFCORED_OBJECT_DIGEST", "%s", o->digest);
        log_field(&lf, "BPFCORED_PROG_IDS", "%s", ids);
        if (o->n_programs > 0)
                log_field(&lf, "BPFCORED_PROG_ID", "%u", o->programs[0].id);
        log_field(&lf, "BPFCORED_CLIENT_UID", "%u", o->owner.uid);
        log_field(&lf, "BPFCORED_CLIENT_PID", "%d", o->owner.pid);
        log_field(&lf, "BPFCORED_CLIENT_CGROUP", "%s", o->owner.cgroup ?: "");
        log_field(&lf, "BPFCORED_LOAD_USEC", "%llu", (unsigned long long) o->timings.total);
        log_event(&lf, LOG_INFO, MESSAGE_ID_LOADED, "Loaded object %llu (%s) for uid %u: %zu programs [%s], %zu maps, %llu us.",
                  (unsigned long long) o->id, o->name, o->owner.uid, o->n_programs, ids, o->n_maps,
                  (unsigned long long) o->timings.total);
}

/* Attach parameters: the object, the program, and one target kind with its spec. */
static const char *const attach_types[] = {
        "tracepoint", "raw_tp", "tp_btf", "fentry", "fexit", "fmod_ret", "lsm", "kprobe", "kretprobe",
        "uprobe", "uretprobe", "xdp", "tc", "cgroup", "perf_event",
};

static void log_attach_event(const Object *o, const char *program, const LinkInfo *l, const Peer *peer,
                             const char *message_id, const char *verb) {
        LogFields lf = {};

        log_field(&lf, "BPFCORED_OBJECT_ID", "%llu", (unsigned long long) o->id);
        log_field(&lf, "BPFCORED_OBJECT_NAME", "%s", o->name);
        log_field(&lf, "BPFCORED_PROGRAM", "%s", program);
        log_field(&lf, "BPFCORED_LINK_ID", "%u", l->id);
        log_field(&lf, "BPFCORED_LINK_TYPE", "%s", l->type ?: "");
        log_field(&lf, "BPFCORED_LINK_TARGET", "%s", l->target ?: "");
        log_field(&lf, "BPFCORED_CLIENT_UID", "%u", peer->cred.uid);
        log_field(&lf, "BPFCORED_CLIENT_PID", "%d", peer->cred.pid);
        log_event(&lf, LOG_INFO, message_id, "%s program %s of object %llu: link %u, %s %s.", verb, program,
                  (unsigned long long) o->id, l->id, l->type ?: "", l->target ?: "");
}

static void emit_link(Manager *m, const char *kind, const Object *o, const char *program, const LinkInfo *l) {
        json_object *e = event_new(kind);

        event_add_object(e, o);
        json_object_object_add(e, "program", json_object_new_string(program));
        json_object_object_add(e, "link_id", json_object_new_int64(l->id));
        json_object_object_add(e, "link_type", json_object_new_string(l->type ?: ""));
        json_object_object_add(e, "link_target", json_object_new_string(l->target ?: ""));
        event_emit(m, e);
}

static bool attach_allowed(Manager *m, const Peer *peer, const char *type) {
        const PolicyRule *rule;

        if (policy_is_admin(m->policy, peer))
                return true;
        rule = policy_rule(m->policy, peer);
        return rule && policy_allows(rule->attach_types, rule->n_attach_types, type);
}

typedef struct FilterIntent {
        Manager *m;
        const Object *o;
        const ProgramInfo *p;
} FilterIntent;

/* A clsact filter is written down before it exists: the next start removes it if nothing lists it. */
static int record_filter(const TcFilter *t, void *userdata) {
        const FilterIntent *in = userdata;

        return state_filter_record(in->m->state_dir, t->handle, in->o->id, in->p->id, t);
}

/*
 * Attaches program of o as req says, pins the link and records it in o. An
 * Attach call (standalone) also writes the state file and tells the journal
 * and subscribers; a Load does both once, after all its links, when the whole
 * load stands (a later failure takes these links along).
 */
static int attach_and_record(Manager *m, Object *o, ProgramInfo *p, const AttachRequest *req,
                             const Peer *peer, bool standalone, LinkInfo *ret, Failure *f) {
        _cleanup_close_ int prog_fd = -1;
        AttachResult a = ATTACH_RESULT_NULL;
        FilterIntent intent = { .m = m, .o = o, .p = p };
        AttachRequest rq = *req;
        LinkInfo l = {};
        int r;

        prog_fd = registry_program_fd(o, p->name);
        if (prog_fd < 0)
                return failure_system(f, prog_fd, "opening program %s", p->name);
        if (rq.type && strcmp(rq.type, "tc") == 0) {
                rq.filter_id = registry_new_filter_id(m->registry);
                rq.before_filter = record_filter;
                rq.userdata = &intent;
        }
        r = attach_program(prog_fd, &rq, &a, f);
        if (r < 0) {
                if (rq.filter_id)
                        state_filter_forget(m->state_dir, rq.filter_id);
                return r;
        }
        crash_point("attach-after-attach");
        /* A clsact filter has no link to pin: its record (record_filter) stands in for the pin. */
        r = a.is_filter ? 0 : registry_pin_link(o, a.link_fd, a.link_id, f);
        if (r < 0) {
                attach_result_done(&a);
                return r;
        }
        crash_point("attach-after-pin");
        l = (LinkInfo) { .id = a.link_id, .type = TAKE_PTR(a.type), .target = TAKE_PTR(a.target),
                         .is_filter = a.is_filter, .filter = a.filter };
        if (ret) {
                ret->id = l.id;
                ret->type = strdup(l.type ?: "");
                ret->target = strdup(l.target ?: "");
                ret->is_filter = l.is_filter;
                ret->filter = l.filter;
        }
        r = program_add_link(p, &l);
        if (r >= 0 && standalone) {
                r = state_write(m->state_dir, o, NULL, f);
                if (r >= 0)
                        crash_point("attach-after-state");
        }
        if (r < 0) {
                object_remove_link(o, a.link_id);
                link_info_done(&l);
                if (!a.is_filter)
                        registry_unpin_link(o, a.link_id);
                else if (clsact_detach(&a.filter, p->id) >= 0)
                        state_filter_forget(m->state_dir, a.link_id);
        }
        attach_result_done(&a); /* closes our fd: the pin holds the link */
        if (r >= 0 && standalone) {
                log_attach_event(o, p->name, &p->links[p->n_links - 1], peer, MESSAGE_ID_ATTACHED, "Attached");
                emit_link(m, "attached", o, p->name, &p->links[p->n_links - 1]);
        }
        return r;
}

/*
 * An Attach target parameter's value as attach_program() takes it (a new
 * reference): "cat/name" is short for {"tracepoint": "cat/name"}, true for {}.
 * NULL when it is none of an object, a string or true.
 */
static json_object *attach_spec(json_object *val) {
        json_object *spec;

        if (json_object_is_type(val, json_type_object))
                return json_object_get(val);
        if (json_object_is_type(val, json_type_string)) {
                spec = json_object_new_object();
                json_object_object_add(spec, "tracepoint", json_object_get(val));
                return spec;
        }
        if (json_object_is_type(val, json_type_boolean) && json_object_get_boolean(val))
                return json_object_new_object();
        return NULL;
}

/* Explicit attachments of a load ({"program": P, TYPE: target} each, objects.d's attach.PROGRAM lines). */
static int attach_listed(Manager *m, Object *o, json_object *attachments, const Peer *peer, Failure *f) {
        for (size_t i = 0; i < json_object_array_length(attachments); i++) {
                json_object *a = json_object_array_get_idx(attachments, i);
                const char *program = json_object_get_string(json_object_object_get(a, "program"));
                AttachRequest req = { .caller_pid = peer->cred.pid };
                _cleanup_(json_object_putp) json_object *spec = NULL;
                ProgramInfo *p = program ? object_find_program(o, program) : NULL;
                int r;

                if (!p)
                        return failure_setf(f, -ENOENT, VL_ERROR_NO_SUCH_PROGRAM, "program", "%s", program ?: "");
                json_object_object_foreach(a, key, val)
                        for (size_t k = 0; k < ELEMENTSOF(attach_types); k++)
                                if (strcmp(key, attach_types[k]) == 0) {
                                        req.type = attach_types[k];
                                        json_object_put(spec);
                                        spec = attach_spec(val);
                                }
                if (!req.type || !spec)
                        return failure_setf(f, -EINVAL, VL_ERROR_ATTACH_FAILED, "message",
                                            "no valid target to attach program %s to", program);
                req.spec = spec;
                if (!attach_allowed(m, peer, req.type))
                        return failure_setf(f, -EPERM, VL_ERROR_PERMISSION_DENIED, "reason",
                                            "attaching program %s as %s is not allowed by your rule", program,
                                            req.type);
                r = attach_and_record(m, o, p, &req, peer, false, NULL, f);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Load with attach:true: every program attached by its SEC() name, like a skeleton's auto-attach. */
static int attach_all(Manager *m, Object *o, const Peer *peer, Failure *f) {
        for (size_t i = 0; i < o->n_programs; i++) {
                ProgramInfo *p = &o->programs[i];
                AttachRequest req = { .caller_pid = peer->cred.pid };
                json_object *spec = NULL;
                int r;

                r = attach_spec_from_section(p->section, &req.type, &spec);
                if (r == -ENOTSUP) {
                        log_debug("Program %s (%s) needs an explicit target: not auto-attached.", p->name, p->section);
                        continue;
                }
                if (r < 0)
                        return failure_setf(f, r, VL_ERROR_ATTACH_FAILED, "message",
                                            "cannot tell what program %s attaches to from its section %s", p->name,
                                            p->section);
                req.spec = spec;
                if (!attach_allowed(m, peer, req.type)) {
                        json_object_put(spec);
                        return failure_setf(f, -EPERM, VL_ERROR_PERMISSION_DENIED, "reason",
                                            "attaching program %s as %s is not allowed by your rule", p->name, req.type);
                }
                r = attach_and_record(m, o, p, &req, peer, false, NULL, f);
                json_object_put(spec);
                if (r < 0)
                        return r;
        }
        return 0;
}

typedef struct AttachParameters {
        uint64_t id;
        const char *program;
} AttachParameters;

static int vl_method_attach(Call *call) {
        Manager *m = call->manager;
        AttachParameters p = {};
        AttachRequest req = { .caller_pid = call->peer->cred.pid };
        _cleanup_(json_object_putp) json_object *params = NULL, *spec = NULL;
        LinkInfo l = {};
        Failure f = {};
        ProgramInfo *prog;
        json_object *reply, *link;
        Object *o;
        size_t n_types = 0;
        int r;

        /* The target kind is the one key besides id and program; the table checks those two. */
        params = json_object_new_object();
        json_object_object_foreach(call->parameters, key, val) {
                bool is_type = false;

                for (size_t i = 0; i < ELEMENTSOF(attach_types); i++)
                        if (strcmp(key, attach_types[i]) == 0) {
                                req.type = attach_types[i];
                                is_type = true;
                        }
                if (!is_type) {
                        json_object_object_add(params, key, json_object_get(val));
                        continue;
                }
                n_types++;
                json_object_put(spec);
                spec = attach_spec(val);
                if (!spec)
                        return reply_invalid_parameter(call, key, "the target must be an object (or a string for tracepoints)");
        }
        {
                static const ParamField table[] = {
                        { "id", json_type_int, param_uint64, offsetof(AttachParameters, id), true },
                        { "program", json_type_string, param_string, offsetof(AttachParameters, program), true },
                        {}
                };
                Failure df = {};

                r = params_decode(params, table, &p, &df);
                if (r < 0) {
                        r = reply_failure(call, &df);
                        failure_done(&df);
                        return r;
                }
        }
        if (n_types != 1)
                return reply_invalid_parameter(call, "target",
                                               "name exactly one target: tracepoint, raw_tp, tp_btf, fentry, fexit, lsm, "
                                               "kprobe, kretprobe, uprobe, uretprobe, xdp, tc, cgroup or perf_event");
        req.spec = spec;

        o = visible_object(call, p.id);
        if (!o)
                return reply_no_such_object(call, p.id);
        if (!attach_allowed(call->manager, call->peer, req.type))
                return reply_denied(call, "attaching as %s is not allowed by your rule", req.type);
        prog = object_find_program(o, p.program);
        if (!prog)
                return reply_errorf(call, VL_ERROR_NO_SUCH_PROGRAM, "program", "%s", p.program);

        r = attach_and_record(m, o, prog, &req, call->peer, true, &l, &f);
        if (r < 0) {
                if (!f.error)
                        failure_system(&f, r, "attaching");
                r = reply_failure(call, &f);
                failure_done(&f);
                return r;
        }
        link = json_object_new_object();
        json_object_object_add(link, "id", json_object_new_int64(l.id));
        json_object_object_add(link, "type", json_object_new_string(l.type ?: ""));
        json_object_object_add(link, "target", json_object_new_string(l.target ?: ""));
        if (l.is_filter)
                json_object_object_add(link, "clsact", tc_filter_to_json(&l.filter));
        json_object_object_add(link, "object", json_object_new_uint64(o->id));
        json_object_object_add(link, "program", json_object_new_string(prog->name));
        link_info_done(&l);
        reply = json_object_new_object();
        json_object_object_add(reply, "link", link);
        return vl_reply(call, reply, NULL, 0);
}

typedef struct DetachParameters {
        uint32_t link;
} DetachParameters;

static int vl_method_detach(Call *call) {
        static const ParamField table[] = {
                { "link", json_type_int, param_uint32, offsetof(DetachParameters, link), true },
                {}
        };
        Manager *m = call->manager;
        DetachParameters p = {};
        ProgramInfo *prog = NULL;
        LinkInfo copy = {};
        Failure f = {};
        Object *o;
        int r;

        r = decode(call, table, &p);
        if (r != 0)
                return r;
        o = registry_find_link(m->registry, p.link, &prog);
        if (o && !may_see(call, o))
                o = NULL;
        if (!o) {
                json_object *e = json_object_new_object();
                json_object_object_add(e, "link", json_object_new_int64(p.link));
                return vl_error(call, VL_ERROR_NO_SUCH_OBJECT, e);
        }
        for (size_t k = 0; k < prog->n_links; k++)
                if (prog->links[k].id == p.link)
                        copy = (LinkInfo) { .id = p.link, .type = strdup(prog->links[k].type ?: ""),
                                            .target = strdup(prog->links[k].target ?: ""),
                                            .is_filter = prog->links[k].is_filter,
                                            .filter = prog->links[k].filter };
        /* Record first, then unpin: after a crash in between, the start removes the unlisted pin. */
        object_remove_link(o, p.link);
        r = state_write(m->state_dir, o, NULL, &f);
        if (r < 0) {
                link_info_done(&copy);
                r = reply_failure(call, &f);
                failure_done(&f);
                return r;
        }
        crash_point("detach-after-state");
        if (!copy.is_filter)
                registry_unpin_link(o, p.link);
        else {
                /* On failure the record stays: nothing lists the filter now, so the next start removes it. */
                r = clsact_detach(&copy.filter, prog->id);
                if (r < 0)
                        log_warning_errno(r, "Cannot remove tc filter %u (%s): %m", copy.id, copy.target);
                else
                        state_filter_forget(m->state_dir, copy.id);
        }
        log_attach_event(o, prog->name, &copy, call->peer, MESSAGE_ID_DETACHED, "Detached");
        emit_link(m, "detached", o, prog->name, &copy);
        link_info_done(&copy);
        return vl_reply(call, NULL, NULL, 0);
}

const ParamField load_table[] = {
        { "fd", json_type_int, param_uint32, offsetof(LoadParameters, fd), true },
        { "name", json_type_string, param_string, offsetof(LoadParameters, name) },
        { "programs", json_type_array, param_strv, offsetof(LoadParameters, programs) },
        { "globals", json_type_object, param_json, offsetof(LoadParameters, globals) },
        { "maps", json_type_object, param_json, offsetof(LoadParameters, maps) },
        { "attach", json_type_boolean, param_bool, offsetof(LoadParameters, attach) },
        { "btf_fd", json_type_int, param_optional_uint32, offsetof(LoadParameters, btf_fd) },
        { "btf", json_type_string, param_string, offsetof(LoadParameters, btf) },
        {}
};

/* The fd a parameter refers to by index; replies InvalidParameter when there is none. */
static int call_fd(Call *call, const char *param, uint32_t index, int *ret) {
        if (index >= call->n_fds) {
                char msg[128];
                snprintf(msg, sizeof(msg), "%s %u refers to no file descriptor: the call carried %zu", param, index,
                         call->n_fds);
                return reply_invalid_parameter(call, param, msg);
        }
        *ret = call->fds[index];
        return 1;
}

/* What Load and Check share: the object (and extra BTF) read, checked and planned. */
typedef struct Intake {
        ObjectBytes obj;
        int fd;           /* the caller's file, while the call lasts (-1: objects.d, read whole) */
        ObjectBytes user_btf;
        struct stat st;   /* the client's file as read (st_ino 0: unknown or changed meanwhile) */
        DigestJob digest; /* sha256 of the whole object, computed while it loads */
        json_object *object_json; /* the loaded object as its state file has it: the reply */
        const char *known_digest; /* the whole file's sha256 when the caller has it (objects.d) */
        char plan_key[LOADER_DIGEST_MAX];
        Plan *plan;
        uint64_t receive_us, plan_us;
} Intake;

static int intake_plan(Manager *m, const LoadParameters *p, Intake *in, Failure *f);

static void intake_done(Intake *in) {
        (void) loader_digest_wait(&in->digest); /* the thread reads in->obj */
        loader_read_done(&in->obj);
        loader_read_done(&in->user_btf);
        json_object_put(in->object_json);
        plan_unref(in->plan);
}

/*
 * The file the last load of a plan read, unchanged (the same file, stat and
 * bytes): its bytes as that load read and checked them, compared with the
 * file's but not read, checked or hashed again. 1 when in is ready, 0 when
 * the file is not known (or not the same any more): it is read as any other.
 */
static int intake_known_file(Manager *m, const LoadParameters *p, Intake *in) {
        struct stat st, after;
        KeptFile file = {};
        Plan *plan;
        int r;

        if (p->btf_fd.set || fstat(in->fd, &st) < 0 || !S_ISREG(st.st_mode))
                return 0;
        plan = plans_find_file(&m->plans, &st, p->btf);
        if (!plan)
                return 0;
        r = loader_file_holds(in->fd, &plan->kept.bytes);
        if (r == 0)
                kept_file_done(&plan->kept); /* changed under the same stat: compared in vain next time */
        if (r <= 0 || fstat(in->fd, &after) < 0 || !loader_file_unchanged(&st, &after))
                return 0;
        in->plan = plans_take_file(&m->plans, plan, &file);
        in->obj = file.bytes;
        in->st = st;
        loader_digest_known(&in->digest, in->obj.data, in->obj.size, file.digest);
        m->counters.known_files++;
        return 1;
}

/* Returns 1 when in is ready, <= 0 when a reply was sent or the call failed. */
static int intake(Call *call, const LoadParameters *p, bool load, Intake *in, Failure *f) {
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        int fd = -1, r;

        r = call_fd(call, "fd", p->fd, &fd);
        if (r <= 0)
                return r;
        in->fd = fd;
        /* Only a load hands the bytes back to the plan (after_load()). */
        if (load && intake_known_file(call->manager, p, in) > 0) {
                in->receive_us = now_usec(CLOCK_MONOTONIC) - t0;
                return 1;
        }
        r = read_object(call, fd, "fd", true, &in->obj, &in->st);
        if (r <= 0)
                return r;
        if (p->btf_fd.set) {
                int bfd = -1;

                r = call_fd(call, "btf_fd", p->btf_fd.value, &bfd);
                if (r <= 0)
                        return r;
                r = read_object(call, bfd, "btf_fd", false, &in->user_btf, NULL);
                if (r <= 0)
                        return r;
        }
        r = intake_plan(call->manager, p, in, f);
        in->receive_us = now_usec(CLOCK_MONOTONIC) - t0 - in->plan_us;
        return r;
}

/* Checks the object's bytes and plans its CO-RE relocations. 1 when ready. */
static int intake_plan(Manager *m, const LoadParameters *p, Intake *in, Failure *f) {
        uint64_t t0;
        int r;

        r = loader_check_elf(in->obj.data, in->obj.size, in->plan_key, f);
        if (r < 0)
                return r;

        t0 = now_usec(CLOCK_MONOTONIC);
        PlanRequest req = {
                .plan_key = in->plan_key,
                .elf = in->obj.data,
                .size = in->obj.size,
                .btf_name = p->btf,
                .user_btf = in->user_btf.data,
                .user_btf_size = in->user_btf.size,
        };
        r = plans_get(&m->plans, &req, &in->plan, f);
        in->plan_us = now_usec(CLOCK_MONOTONIC) - t0;
        if (r < 0)
                return r;
        {
                const char *known = in->known_digest ?: plan_file_digest(in->plan, &in->st);

                if (known)
                        loader_digest_known(&in->digest, in->obj.data, in->obj.size, known);
                else {
                        /* A file not seen before: its DWARF too, for the digest of the whole file. */
                        if (in->obj.n_holes > 0) {
                                struct stat after;

                                r = loader_read_holes(in->fd, &in->obj);
                                if (r < 0)
                                        return failure_system(f, r, "reading the object");
                                /* Its digest would be of no file that ever was: the caller must try again. */
                                if (fstat(in->fd, &after) < 0 || !loader_file_unchanged(&in->st, &after))
                                        return failure_invalid_parameter(f, -EBUSY, "fd", "the object file changed while "
                                                                         "it was read: load it again");
                        }
                        loader_digest_start(&in->digest, in->obj.data, in->obj.size);
                }
        }
        if (in->plan->core->failed) {
                json_object *params = json_object_new_object();

                json_object_object_add(params, "relocations", plan_relocations_json(in->plan));
                return failure_set(f, -EINVAL, VL_ERROR_RELOCATION_FAILED, params);
        }
        return 1;
}

static void log_fallback(const Object *o, const char *reason) {
        LogFields lf = {};

        log_field(&lf, "BPFCORED_OBJECT_NAME", "%s", o->name);
        log_field(&lf, "BPFCORED_OBJECT_DIGEST", "%s", o->digest);
        log_field(&lf, "BPFCORED_FALLBACK_REASON", "%s", reason);
        log_event(&lf, LOG_INFO, MESSAGE_ID_FALLBACK,
                  "Object %s is relocated by libbpf against the whole cached kernel BTF, not a minimal one: %s.",
                  o->name, reason);
}

static void emit_load_failed(Manager *m, const Peer *peer, const char *name, const Failure *f) {
        json_object *e = event_new("load_failed"), *msg = NULL;

        json_object_object_add(e, "object_name", json_object_new_string(name ?: ""));
        json_object_object_add(e, "error", json_object_new_string(f->error ?: ""));
        if (f->parameters && json_object_object_get_ex(f->parameters, "message", &msg))
                json_object_object_add(e, "message", json_object_get(msg));
        json_object_object_add(e, "uid", json_object_new_int64(peer->cred.uid));
        json_object_object_add(e, "pid", json_object_new_int64(peer->cred.pid));
        event_emit(m, e);
}

/*
 * The load proper, from an intake that is read and planned: reserve an id,
 * load, pin, write the state file, attach if asked, register. On failure
 * nothing is left behind and f says why. o is the registry's on success.
 */
static int load_planned(Manager *m, const LoadParameters *p, Intake *in, Object *o, const Peer *peer,
                        const LoadLimits *limits, uint64_t t0, Failure *f) {
        _cleanup_free_ char *maps_dir = NULL;
        const char *fallback = NULL;
        int r;

        o->relocations = plan_relocations_json(in->plan);
        r = registry_reserve(m->registry, o, f);
        if (r >= 0 && asprintf(&maps_dir, "%s/maps", o->pin_dir) < 0)
                r = -ENOMEM;
        if (r >= 0) {
                LoadSettings s = {
                        .name = o->name,
                        .programs = p->programs,
                        .globals = p->globals,
                        .maps = p->maps,
                        .maps_pin_dir = maps_dir,
                        .btf_custom_path = plan_btf_custom_path(in->plan),
                        .btf_cache = m->btf,
                        .limits = limits,
                        .kept_btf = &in->plan->kernel_btf,
                };

                s.core_on_kernel = in->plan->core->n_relocations > 0 && !s.btf_custom_path;

                if (in->plan->core->needs_full_btf) {
                        /* libbpf would patch the minimal BTF's type ids, not the kernel's. */
                        fallback = "a bpf_core_type_id_kernel() relocation needs the kernel's own type ids";
                        m->counters.fallbacks++;
                } else if (s.btf_custom_path)
                        m->counters.planned++;
                s.opened = plan_take_ready(in->plan, o->name);
                if (s.opened)
                        m->counters.opened_ahead++;
                r = loader_load(in->obj.data, in->obj.size, &s, o, f);
                if (btf_targets_take_stale())
                        manager_refresh_btf_soon(m); /* a module went and came back unseen */
        }
        {
                int k = loader_digest_wait(&in->digest);

                if (k < 0 && r >= 0)
                        r = failure_system(f, k, "hashing the object");
                if (k >= 0) {
                        plan_remember_file(in->plan, &in->st, in->digest.digest);
                        loader_forget_holes(&in->obj); /* the DWARF, hashed, is of no more use */
                }
                memcpy(o->digest, in->digest.digest, sizeof(o->digest));
        }
        if (fallback)
                log_fallback(o, fallback);
        if (r >= 0) {
                uint64_t t2 = now_usec(CLOCK_MONOTONIC);

                crash_point("load-after-load");
                r = registry_pin(o, f);
                o->timings.pin = now_usec(CLOCK_MONOTONIC) - t2;
        }
        if (r >= 0 && p->attach) {
                uint64_t t3 = now_usec(CLOCK_MONOTONIC);

                crash_point("load-after-pin");
                /* Links are pinned beside the programs: a failure or crash takes them along. */
                r = attach_all(m, o, peer, f);
                o->timings.attach = now_usec(CLOCK_MONOTONIC) - t3;
        } else if (r >= 0)
                crash_point("load-after-pin");
        if (r >= 0 && p->attachments) {
                uint64_t t3 = now_usec(CLOCK_MONOTONIC);

                r = attach_listed(m, o, p->attachments, peer, f);
                o->timings.attach += now_usec(CLOCK_MONOTONIC) - t3;
        }
        /* The state file makes the object whole, links included: before it, a crash leaves pins that the
         * next start removes; after it, the next start recovers the object as the reply would describe it. */
        if (r >= 0) {
                o->timings.total = now_usec(CLOCK_MONOTONIC) - t0;
                o->loaded_at_usec = now_usec(CLOCK_REALTIME); /* in the state file too, for after a restart */
                /* A caller (not objects.d) waits for the object as its reply: that text, and no larger than a
                 * reply may be. */
                r = state_write(m->state_dir, o, in->fd >= 0 ? &in->object_json : NULL, f);
        }
        if (r >= 0) {
                crash_point("load-after-state");
                r = registry_add(m->registry, o);
                if (r < 0)
                        (void) state_remove(m->state_dir, o->id);
        }
        if (r < 0) {
                m->counters.load_failures++;
                state_detach_filters(m->state_dir, o);
                registry_unpin(o);
                if (!f->error)
                        failure_system(f, r, "loading the object");
                if (strcmp(f->error, VL_ERROR_VERIFIER_REJECTED) == 0) {
                        m->counters.verifier_rejections++;
                        /* A poisoned CO-RE instruction the verifier reached: say which relocation. */
                        if (o->relocations)
                                json_object_object_add(f->parameters, "relocations", json_object_get(o->relocations));
                }
                log_load_failure(peer, o->name ?: "", f);
                emit_load_failed(m, peer, o->name, f);
                return r;
        }
        m->counters.loads++;
        return 0;
}

/* The journal entries and events of a load that stays. */
static void announce_loaded(Manager *m, uint64_t id) {
        Object *o = registry_get(m->registry, id);
        Peer owner;

        if (!o)
                return;
        owner = (Peer) { .cred = { .pid = o->owner.pid, .uid = o->owner.uid, .gid = o->owner.gid } };
        /* The links made within the load, now that they stay. */
        for (size_t i = 0; i < o->n_programs; i++)
                for (size_t k = 0; k < o->programs[i].n_links; k++) {
                        log_attach_event(o, o->programs[i].name, &o->programs[i].links[k], &owner,
                                         MESSAGE_ID_ATTACHED, "Attached");
                        emit_link(m, "attached", o, o->programs[i].name, &o->programs[i].links[k]);
                }
        log_loaded(o);
        {
                json_object *e = event_new("loaded");
                event_add_object(e, o);
                json_object_object_add(e, "programs", json_object_new_uint64(o->n_programs));
                json_object_object_add(e, "maps", json_object_new_uint64(o->n_maps));
                event_emit(m, e);
        }
}

/* What a Load does once its reply is sent: announce it, then, when nothing else waits, open the object ahead
 * for the next load of its plan. */
typedef struct AfterLoad {
        Manager *manager;
        uint64_t id;
        Plan *plan;
        KeptFile file; /* the object's bytes, back to the plan with the object opened from them */
        char *name;
} AfterLoad;

static void after_load_free(void *userdata) {
        AfterLoad *a = userdata;

        kept_file_done(&a->file);
        plan_unref(a->plan);
        free(a->name);
        free(a);
}

static int on_open_ahead(sd_event_source *s, void *userdata) {
        AfterLoad *a = userdata;

        /* Dropped from the cache meanwhile: nothing to do. Else the file is kept for the next load, and opened
         * ahead unless an earlier load's object is (another name: a load under each name finds it half the time
         * when two names alternate, rather than never). */
        if (a->plan->in_cache)
                plans_keep_ready(&a->manager->plans, a->plan,
                                 a->plan->ready ? NULL
                                                : loader_open_ahead(a->file.bytes.data, a->file.bytes.size, a->name,
                                                                    plan_btf_custom_path(a->plan)),
                                 a->name, &a->file);
        /* Its last reference is the loop's: dropping it frees the source, and a with it, once this returns. */
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        (void) sd_event_source_set_floating(s, false);
        return 0;
}

static void after_load(Manager *m, void *userdata) {
        AfterLoad *a = userdata;
        sd_event_source *s = NULL;

        announce_loaded(m, a->id);
        /* The loop owns the source (floating), so a daemon stopping before it runs frees a with it. */
        if (!a->name || !a->plan->in_cache ||
            sd_event_add_defer(m->event, &s, on_open_ahead, a) < 0) {
                after_load_free(a);
                return;
        }
        if (sd_event_source_set_destroy_callback(s, after_load_free) < 0) {
                sd_event_source_disable_unref(s);
                after_load_free(a);
                return;
        }
        /* After quick calls, before the next slow one: open-aheads never pile up behind a stream of loads. */
        (void) sd_event_source_set_priority(s, SD_EVENT_PRIORITY_IDLE - 1);
        (void) sd_event_source_set_floating(s, true);
        sd_event_source_unref(s);
}

/*
 * Whether the caller may load, and within what (before any kernel work):
 * 1 for admins (no limits), 2 with *ret filled for callers a rule allows,
 * 0 when a refusal was sent.
 */
static int authorize_load(Call *call, const LoadParameters *p, LoadLimits *ret) {
        Manager *m = call->manager;
        const PolicyRule *rule;
        uint64_t objects = 0, programs = 0, bytes = 0;

        *ret = (LoadLimits) {};
        if (policy_is_admin(m->policy, call->peer))
                return 1;
        rule = policy_rule(m->policy, call->peer);
        if (!rule)
                return reply_denied(call, "uid %u (cgroup %s) matches no rule of %s", call->peer->cred.uid,
                                    call->peer->cgroup ?: "?", m->config);
        if (p->globals && !rule->allow_globals)
                return reply_denied(call, "rule '%s' does not allow setting globals", rule->name);
        if (p->maps && !rule->allow_maps)
                return reply_denied(call, "rule '%s' does not allow overriding map sizes", rule->name);
        for (size_t i = 0; i < m->registry->n_objects; i++) {
                const Object *o = m->registry->objects[i];

                if (o->owner.uid != call->peer->cred.uid)
                        continue;
                objects++;
                programs += o->n_programs;
                for (size_t k = 0; k < o->n_maps; k++)
                        bytes += ((uint64_t) o->maps[k].key_size + o->maps[k].value_size) * o->maps[k].max_entries;
        }
        if (objects >= rule->max_objects) {
                json_object *e = json_object_new_object();
                char msg[128];

                snprintf(msg, sizeof(msg), "max-objects: uid %u has %llu of %llu", call->peer->cred.uid,
                         (unsigned long long) objects, (unsigned long long) rule->max_objects);
                log_denied(call, msg);
                json_object_object_add(e, "limit", json_object_new_string(msg));
                return vl_error(call, VL_ERROR_QUOTA_EXCEEDED, e);
        }
        *ret = (LoadLimits) {
                .programs_left = rule->max_programs == POLICY_UNLIMITED ? UINT64_MAX : rule->max_programs - MIN(programs, rule->max_programs),
                .map_bytes_left = rule->max_map_bytes == POLICY_UNLIMITED ? UINT64_MAX : rule->max_map_bytes - MIN(bytes, rule->max_map_bytes),
                .program_types = rule->program_types,
                .n_program_types = rule->n_program_types,
        };
        return 2;
}

static int vl_method_load(Call *call) {
        Manager *m = call->manager;
        LoadParameters p = {};
        LoadLimits limits = {};
        bool limited;
        _cleanup_(object_freep) Object *o = NULL;
        _cleanup_(intake_done) Intake in = {};
        Failure f = {};
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        json_object *reply;
        int r;

        r = decode(call, load_table, &p);
        if (r != 0)
                return r;
        if (p.name && !object_name_valid(p.name))
                return reply_invalid_parameter(call, "name",
                                               "a name has 1 to 64 characters of A-Z, a-z, 0-9, '_', '.' and '-'");

        r = authorize_load(call, &p, &limits);
        if (r <= 0)
                return r;
        limited = r == 2;

        o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        o->owner = (Owner) { .uid = call->peer->cred.uid, .gid = call->peer->cred.gid, .pid = call->peer->cred.pid };
        if (call->peer->cgroup && !(o->owner.cgroup = strdup(call->peer->cgroup)))
                return -ENOMEM;

        r = intake(call, &p, true, &in, &f);
        if (r == 0 || (r < 0 && !f.error && call->replied))
                return r;
        o->name = p.name ? strdup(p.name) : object_name_from_fd(call->fds[p.fd]);
        if (!o->name)
                return -ENOMEM;
        o->timings.receive = in.receive_us;
        o->timings.plan = in.plan_us;
        if (r >= 0)
                r = load_planned(m, &p, &in, o, call->peer, limited ? &limits : NULL, t0, &f);
        else {
                log_load_failure(call->peer, o->name, &f);
                emit_load_failed(m, call->peer, o->name, &f);
        }
        if (r < 0) {
                if (!f.error)
                        failure_system(&f, r, "loading the object");
                r = reply_failure(call, &f);
                failure_done(&f);
                return r;
        }
        reply = json_object_new_object();
        json_object_object_add(reply, "object", in.object_json ? json_object_get(in.object_json) : object_to_json(o));
        {
                AfterLoad *a = malloc(sizeof(*a));

                if (a) {
                        *a = (AfterLoad) { .manager = m, .id = o->id, .plan = plan_ref(in.plan),
                                           .file = { .bytes = in.obj, .st = in.st }, .name = strdup(o->name) };
                        memcpy(a->file.digest, o->digest, sizeof(a->file.digest));
                        in.obj = (ObjectBytes) {};
                        call->after_reply = after_load;
                        call->after_reply_data = a;
                } else
                        announce_loaded(m, o->id);
        }
        TAKE_PTR(o); /* the registry has it */
        return vl_reply(call, reply, NULL, 0);
}

int methods_load_file(Manager *m, const char *name, void *data, size_t size, const char *digest,
                      json_object *params, json_object *attachments, const char *source, const char *source_digest,
                      Failure *f) {
        _cleanup_(object_freep) Object *o = NULL;
        _cleanup_(intake_done) Intake in = { .obj = { .data = data, .size = size }, .fd = -1, .known_digest = digest };
        static const Peer self = { .cred = { .pid = 0, .uid = 0, .gid = 0 } };
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        LoadParameters p = {};
        int r;

        /* An objects.d entry has the parameters of a Load, but no fd: fd is the file. */
        json_object_object_add(params, "fd", json_object_new_int(0));
        r = params_decode(params, load_table, &p, f);
        if (r < 0)
                return r;
        if (attachments && json_object_array_length(attachments) > 0)
                p.attachments = attachments;
        r = intake_plan(m, &p, &in, f);
        if (r < 0)
                return r;

        o = calloc(1, sizeof(*o));
        if (!o || !(o->name = strdup(name)) || !(o->source = strdup(source)) ||
            !(o->source_digest = strdup(source_digest)))
                return -ENOMEM;
        o->timings.plan = in.plan_us;
        r = load_planned(m, &p, &in, o, &self, NULL, t0, f);
        if (r < 0)
                return r;
        announce_loaded(m, TAKE_PTR(o)->id); /* the registry has it */
        return 0;
}

static int vl_method_check(Call *call) {
        LoadParameters p = {};
        LoadLimits limits = {};
        _cleanup_(intake_done) Intake in = {};
        Failure f = {};
        json_object *reply;
        bool ok = true;
        int r;

        r = decode(call, load_table, &p);
        if (r != 0)
                return r;
        r = authorize_load(call, &p, &limits);
        if (r <= 0)
                return r;
        call->manager->counters.checks++;
        r = intake(call, &p, false, &in, &f);
        if (r == 0 || (r < 0 && !f.error && call->replied))
                return r;
        if (r < 0) {
                if (!f.error)
                        return r;
                r = reply_failure(call, &f);
                failure_done(&f);
                return r;
        }
        for (size_t i = 0; i < in.plan->core->n_relocations; i++)
                ok = ok && in.plan->core->relocations[i].ok;
        r = loader_digest_wait(&in.digest);
        if (r < 0)
                return r;
        plan_remember_file(in.plan, &in.st, in.digest.digest);
        reply = json_object_new_object();
        json_object_object_add(reply, "ok", json_object_new_boolean(ok));
        json_object_object_add(reply, "btf", json_object_new_string(p.btf ?: "kernel"));
        json_object_object_add(reply, "digest", json_object_new_string(in.digest.digest));
        json_object_object_add(reply, "relocations", plan_relocations_json(in.plan));
        json_object_object_add(reply, "plan_us", json_object_new_uint64(in.plan->plan_us));
        return vl_reply(call, reply, NULL, 0);
}

typedef struct IdParameters {
        uint64_t id;
} IdParameters;

static const ParamField id_table[] = {
        { "id", json_type_int, param_uint64, offsetof(IdParameters, id), true },
        {}
};

static int vl_method_get(Call *call) {
        IdParameters p = {};
        Object *o;
        json_object *reply;
        int r;

        r = decode(call, id_table, &p);
        if (r != 0)
                return r;
        o = visible_object(call, p.id);
        if (!o)
                return reply_no_such_object(call, p.id);
        reply = json_object_new_object();
        json_object_object_add(reply, "object", object_to_frozen(o, NULL));
        return vl_reply(call, reply, NULL, 0);
}

typedef struct ListParameters {
        OptionalU32 owner;
} ListParameters;

/* With "more", List sends its objects in replies of about this much JSON each. */
#define LIST_BATCH_BYTES (1u * 1024 * 1024)

/* A List with "more": the ids it found, sent a batch at a time. */
typedef struct ListStream {
        uint64_t *ids;
        size_t n, next;
} ListStream;

static void list_stream_free(void *data) {
        ListStream *ls = data;

        if (!ls)
                return;
        free(ls->ids);
        free(ls);
}

/* The next batch: objects unloaded since the List began are left out, none loaded since is added. */
static int list_stream_step(Call *call, void *data) {
        ListStream *ls = data;
        json_object *reply, *objects = json_object_new_array();
        size_t batch = 0;

        while (ls->next < ls->n && batch < LIST_BATCH_BYTES) {
                Object *o = registry_get(call->manager->registry, ls->ids[ls->next++]);
                size_t len = 0;

                if (!o)
                        continue;
                json_object_array_add(objects, object_to_frozen(o, &len));
                batch += len + 1;
        }
        reply = json_object_new_object();
        json_object_object_add(reply, "objects", objects);
        return vl_stream_reply(call, reply, ls->next >= ls->n);
}

/* Whether List shows o: the caller may see it, and it is the asked owner's. */
static bool listed(Call *call, const ListParameters *p, const Object *o) {
        return (!p->owner.set || o->owner.uid == p->owner.value) && may_see(call, o);
}

/*
 * Objects with reports of thousands of relocations take hundreds of KB of
 * JSON each: a few dozen of them are more than one message may carry. With
 * "more" they go out in batches, each reply an "objects" array of its own,
 * the next made once the last is sent; without, a list that does not fit is
 * TooLarge, saying to ask with "more".
 */
static int vl_method_list(Call *call) {
        static const ParamField table[] = {
                { "owner", json_type_int, param_optional_uint32, offsetof(ListParameters, owner) },
                {}
        };
        Registry *reg = call->manager->registry;
        ListParameters p = {};
        json_object *reply, *objects;
        size_t total = 0;
        int r;

        r = decode(call, table, &p);
        if (r != 0)
                return r;
        if (call->more) {
                ListStream *ls = calloc(1, sizeof(*ls));

                if (!ls || (reg->n_objects > 0 && !(ls->ids = calloc(reg->n_objects, sizeof(uint64_t))))) {
                        list_stream_free(ls);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < reg->n_objects; i++)
                        if (listed(call, &p, reg->objects[i]))
                                ls->ids[ls->n++] = reg->objects[i]->id;
                return vl_reply_stream(call, list_stream_step, ls, list_stream_free);
        }

        objects = json_object_new_array();
        for (size_t i = 0; i < reg->n_objects; i++) {
                size_t len = 0;

                if (!listed(call, &p, reg->objects[i]))
                        continue;
                json_object_array_add(objects, object_to_frozen(reg->objects[i], &len));
                total += len + 1;
                if (total > VL_MAX_MESSAGE - VL_REPLY_ENVELOPE) {
                        json_object_put(objects);
                        (void) malloc_trim(0); /* the texts rendered so far, freed */
                        return reply_too_large(call, "message_size",
                                               "the objects take more than the %u bytes of JSON a message may "
                                               "have: call List with \"more\" to get them in batches",
                                               VL_MAX_MESSAGE);
                }
        }
        reply = json_object_new_object();
        json_object_object_add(reply, "objects", objects);
        return vl_reply(call, reply, NULL, 0);
}

static int vl_method_unload(Call *call) {
        Manager *m = call->manager;
        IdParameters p = {};
        LogFields lf = {};
        Object *o;
        _cleanup_free_ char *name = NULL;
        int r;

        r = decode(call, id_table, &p);
        if (r != 0)
                return r;
        o = visible_object(call, p.id);
        if (!o)
                return reply_no_such_object(call, p.id);
        name = strdup(o->name);
        /* The state file goes first: after a crash here, the leftover pins are removed at start. */
        r = state_remove(m->state_dir, p.id);
        if (r < 0)
                return log_error_errno(r, "Cannot remove the state file of object %llu: %m", (unsigned long long) p.id);
        crash_point("unload-after-state");
        state_detach_filters(m->state_dir, o);
        r = registry_unload(m->registry, p.id);
        if (r < 0)
                return r;
        m->counters.unloads++;
        log_field(&lf, "BPFCORED_OBJECT_ID", "%llu", (unsigned long long) p.id);
        log_field(&lf, "BPFCORED_OBJECT_NAME", "%s", name ?: "");
        log_field(&lf, "BPFCORED_CLIENT_UID", "%u", call->peer->cred.uid);
        log_field(&lf, "BPFCORED_CLIENT_PID", "%d", call->peer->cred.pid);
        log_field(&lf, "BPFCORED_CLIENT_CGROUP", "%s", call->peer->cgroup ?: "");
        log_event(&lf, LOG_INFO, MESSAGE_ID_UNLOADED, "Unloaded object %llu (%s) for uid %u.",
                  (unsigned long long) p.id, name ?: "", call->peer->cred.uid);
        {
                json_object *e = event_new("unloaded");

                json_object_object_add(e, "object_id", json_object_new_uint64(p.id));
                json_object_object_add(e, "object_name", json_object_new_string(name ?: ""));
                json_object_object_add(e, "uid", json_object_new_int64(call->peer->cred.uid));
                json_object_object_add(e, "pid", json_object_new_int64(call->peer->cred.pid));
                event_emit(m, e);
        }
        return vl_reply(call, NULL, NULL, 0);
}

static int vl_method_status(Call *call) {
        static const ParamField table[] = { {} };
        Manager *m = call->manager;
        json_object *reply, *counters, *limits;
        struct utsname u;
        int r;

        r = decode(call, table, NULL);
        if (r != 0)
                return r;
        uname(&u);
        reply = json_object_new_object();
        json_object_object_add(reply, "version", json_object_new_string(BPFCORED_VERSION));
        json_object_object_add(reply, "uptime_us",
                               json_object_new_uint64(now_usec(CLOCK_MONOTONIC) - m->started_usec));
        json_object_object_add(reply, "kernel", json_object_new_string(u.release));
        json_object_object_add(reply, "objects", json_object_new_uint64(m->registry->n_objects));
        json_object_object_add(reply, "programs", json_object_new_uint64(registry_count_programs(m->registry)));
        json_object_object_add(reply, "maps", json_object_new_uint64(registry_count_maps(m->registry)));
        json_object_object_add(reply, "connections", json_object_new_uint64(m->n_connections));
        json_object_object_add(reply, "bpffs_root", json_object_new_string(m->bpffs_root));

        counters = json_object_new_object();
        json_object_object_add(counters, "loads", json_object_new_uint64(m->counters.loads));
        json_object_object_add(counters, "load_failures", json_object_new_uint64(m->counters.load_failures));
        json_object_object_add(counters, "verifier_rejections",
                               json_object_new_uint64(m->counters.verifier_rejections));
        json_object_object_add(counters, "unloads", json_object_new_uint64(m->counters.unloads));
        json_object_object_add(counters, "calls", json_object_new_uint64(m->counters.calls));
        json_object_object_add(counters, "connections_accepted",
                               json_object_new_uint64(m->counters.connections_accepted));
        json_object_object_add(counters, "connections_refused",
                               json_object_new_uint64(m->counters.connections_refused));
        json_object_object_add(counters, "protocol_errors", json_object_new_uint64(m->counters.protocol_errors));
        json_object_object_add(counters, "checks", json_object_new_uint64(m->counters.checks));
        json_object_object_add(counters, "planned_loads", json_object_new_uint64(m->counters.planned));
        json_object_object_add(counters, "fallback_loads", json_object_new_uint64(m->counters.fallbacks));
        /* libbpf asked for kernel BTF (ksyms, kfuncs, lsm/iter/struct_ops targets) and got the cache's. */
        json_object_object_add(counters, "kernel_btf_served", json_object_new_uint64(btf_targets_served()));
        json_object_object_add(counters, "kernel_btf_lookups", json_object_new_uint64(btf_targets_lookups()));
        json_object_object_add(counters, "module_btf_walks", json_object_new_uint64(btf_targets_module_walks()));
        json_object_object_add(counters, "module_btfs_shown", json_object_new_uint64(btf_targets_modules_shown()));
        json_object_object_add(counters, "unmet_module_searches",
                               json_object_new_uint64(btf_targets_unmet_searches()));
        json_object_object_add(counters, "load_probes_skipped", json_object_new_uint64(loader_probes_answered()));
        json_object_object_add(counters, "object_btf_reused", json_object_new_uint64(loader_btf_reused()));
        /* Loads whose programs the verifier took side by side, on as many threads as CPUs (prog-batch.h). */
        json_object_object_add(counters, "batched_loads", json_object_new_uint64(prog_batch_loads()));
        json_object_object_add(counters, "batched_programs", json_object_new_uint64(prog_batch_programs()));
        json_object_object_add(counters, "batch_failures", json_object_new_uint64(prog_batch_failures()));
        json_object_object_add(counters, "verifier_helpers", json_object_new_uint64(prog_batch_helpers()));
        json_object_object_add(counters, "opened_ahead", json_object_new_uint64(m->counters.opened_ahead));
        json_object_object_add(counters, "known_files", json_object_new_uint64(m->counters.known_files));
        json_object_object_add(counters, "plan_cache_hits", json_object_new_uint64(m->plans.hits));
        json_object_object_add(counters, "plan_cache_misses", json_object_new_uint64(m->plans.misses));
        json_object_object_add(reply, "counters", counters);

        json_object *cache = json_object_new_object();
        json_object_object_add(cache, "btf", json_object_new_uint64(m->btf->n_entries));
        json_object_object_add(cache, "generation", json_object_new_uint64(m->btf->generation));
        json_object_object_add(cache, "indexed_types", json_object_new_uint64(m->btf->kernel.n));
        json_object_object_add(cache, "memory_bytes", json_object_new_uint64(btf_cache_memory(m->btf)));
        json_object_object_add(cache, "startup_us", json_object_new_uint64(m->btf->startup_us));
        json_object_object_add(cache, "cached_plans", json_object_new_uint64(m->plans.n));
        json_object_object_add(reply, "btf_cache", cache);

        limits = json_object_new_object();
        json_object_object_add(limits, "message_bytes", json_object_new_uint64(VL_MAX_MESSAGE));
        json_object_object_add(limits, "object_bytes", json_object_new_uint64(VL_MAX_OBJECT));
        json_object_object_add(limits, "fds_per_message", json_object_new_uint64(VL_MAX_FDS));
        json_object_object_add(limits, "connections", json_object_new_uint64(MANAGER_MAX_CONNECTIONS));
        json_object_object_add(limits, "verifier_log_bytes", json_object_new_uint64(LOADER_LOG_MAX));
        json_object_object_add(reply, "limits", limits);
        return vl_reply(call, reply, NULL, 0);
}

static int vl_method_get_info(Call *call) {
        static const ParamField table[] = { {} };
        json_object *reply, *interfaces;
        int r;

        r = decode(call, table, NULL);
        if (r != 0)
                return r;
        reply = json_object_new_object();
        json_object_object_add(reply, "vendor", json_object_new_string("bpfcored"));
        json_object_object_add(reply, "product", json_object_new_string("bpfcored"));
        json_object_object_add(reply, "version", json_object_new_string(BPFCORED_VERSION));
        json_object_object_add(reply, "url", json_object_new_string("https://varlink.org"));
        interfaces = json_object_new_array();
        json_object_array_add(interfaces, json_object_new_string(VL_SERVICE_INTERFACE));
        json_object_array_add(interfaces, json_object_new_string(BPFCORED_INTERFACE));
        json_object_object_add(reply, "interfaces", interfaces);
        return vl_reply(call, reply, NULL, 0);
}

typedef struct InterfaceParameters {
        const char *interface;
} InterfaceParameters;

static int vl_method_get_interface_description(Call *call) {
        static const ParamField table[] = {
                { "interface", json_type_string, param_string, offsetof(InterfaceParameters, interface), true },
                {}
        };
        InterfaceParameters p = {};
        const char *d;
        json_object *reply;
        int r;

        r = decode(call, table, &p);
        if (r != 0)
                return r;
        if (strcmp(p.interface, BPFCORED_INTERFACE) == 0)
                d = bpfcored_interface_description;
        else if (strcmp(p.interface, VL_SERVICE_INTERFACE) == 0)
                d = varlink_service_description;
        else
                return reply_errorf(call, VL_ERROR_INTERFACE_NOT_FOUND, "interface", "%s", p.interface);
        reply = json_object_new_object();
        json_object_object_add(reply, "description", json_object_new_string(d));
        return vl_reply(call, reply, NULL, 0);
}

/* The registry's object holding kernel map id, and the map, if the caller may see it. */
static Object *find_map(Manager *m, const Peer *peer, uint32_t map_id, MapInfo **ret_map) {
        for (size_t i = 0; i < m->registry->n_objects; i++) {
                Object *o = m->registry->objects[i];

                if (!policy_is_admin(m->policy, peer) && peer->cred.uid != o->owner.uid)
                        continue;
                for (size_t k = 0; k < o->n_maps; k++)
                        if (o->maps[k].id == map_id) {
                                *ret_map = &o->maps[k];
                                return o;
                        }
        }
        return NULL;
}

static int reply_no_such_map(Call *call, uint32_t id) {
        char s[16];

        snprintf(s, sizeof(s), "%u", id);
        return reply_errorf(call, VL_ERROR_NO_SUCH_MAP, "map", "%s", s);
}

/* An fd of the map through its pin (never by id: only what the registry holds). */
static int open_map(const Object *o, const MapInfo *map) {
        char path[4096];
        int fd;

        snprintf(path, sizeof(path), "%s/maps/%s", o->pin_dir, map->name);
        for (char *p = strrchr(path, '/'); *p; p++)
                if (*p == '.')
                        *p = '_';
        fd = bpf_obj_get(path);
        return fd < 0 ? -errno : fd;
}

typedef struct MapParameters {
        uint32_t map;
        uint64_t limit;
        json_object *key, *value;
        const char *flags;
} MapParameters;

/* The map's fd and codec for a call; replies NoSuchMap itself. 1 when ready. */
static int map_open(Call *call, uint32_t map_id, int *ret_fd, MapCodec **ret_codec) {
        MapInfo *info = NULL;
        Object *o = find_map(call->manager, call->peer, map_id, &info);
        int fd, r;

        if (!o)
                return reply_no_such_map(call, map_id);
        fd = open_map(o, info);
        if (fd < 0)
                return fd;
        r = map_codec_new(fd, ret_codec);
        if (r < 0) {
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 1;
}

#define MAP_DUMP_BATCH 256
#define MAP_DUMP_DEFAULT_LIMIT 100000

static int dump_entry(json_object *key, json_object *value, void *userdata) {
        json_object *entries = userdata, *e = json_object_new_object();

        json_object_object_add(e, "key", json_object_get(key));
        json_object_object_add(e, "value", json_object_get(value));
        return json_object_array_add(entries, e) < 0 ? -ENOMEM : 0;
}

/* A MapDump with "more": the map, and where its walk is. */
typedef struct DumpStream {
        MapCodec *codec;
        int fd;
        uint32_t map;
        uint64_t limit;
        MapDumpCursor cursor;
} DumpStream;

static void dump_stream_free(void *data) {
        DumpStream *ds = data;

        if (!ds)
                return;
        map_dump_cursor_done(&ds->cursor);
        map_codec_free(ds->codec);
        safe_close(ds->fd);
        free(ds);
}

/* The next batch of entries, walked when the last one has been sent; the last reply has the count. */
static int dump_stream_step(Call *call, void *data) {
        DumpStream *ds = data;
        json_object *reply, *entries;
        MapInfo *info;
        int r;

        /* Unloaded meanwhile: the stream ends there, and lets go of the map. */
        if (!find_map(call->manager, call->peer, ds->map, &info)) {
                (void) reply_no_such_map(call, ds->map);
                return 0;
        }
        entries = json_object_new_array();
        r = map_codec_dump_step(ds->codec, ds->fd, &ds->cursor, ds->limit, MAP_DUMP_BATCH, dump_entry, entries);
        if (r < 0) {
                json_object_put(entries);
                return r;
        }
        reply = json_object_new_object();
        json_object_object_add(reply, "entries", entries);
        if (r == 0)
                json_object_object_add(reply, "count", json_object_new_int64((int64_t) MIN(ds->cursor.n, (size_t) INT32_MAX)));
        return vl_stream_reply(call, reply, r == 0);
}

/*
 * The map's entries as one JSON array's text, built a batch at a time: -EMSGSIZE as soon as it would be
 * more than a reply may carry (a map of 100,000 large values would otherwise be hundreds of MB of JSON
 * trees before anything refused it). *ret_n: the entries in it.
 */
static int dump_text(const MapCodec *codec, int fd, uint64_t limit, char **ret, size_t *ret_len, size_t *ret_n) {
        _cleanup_free_ char *text = NULL;
        MapDumpCursor cur = {};
        size_t size = 0, used = 1;
        FILE *f = open_memstream(&text, &size);
        int r;

        if (!f)
                return -ENOMEM;
        fputc('[', f);
        do {
                json_object *batch = json_object_new_array();
                const char *t = NULL;
                size_t tlen = 0;

                r = map_codec_dump_step(codec, fd, &cur, limit, MAP_DUMP_BATCH, dump_entry, batch);
                if (r >= 0 && !(t = json_object_to_json_string_length(batch, JSON_C_TO_STRING_PLAIN |
                                                                                     JSON_C_TO_STRING_NOSLASHESCAPE,
                                                                      &tlen)))
                        r = -ENOMEM;
                /* "[a,b]": its elements, after a comma when some came before */
                if (r >= 0 && tlen > 2 && used + tlen > VL_MAX_MESSAGE - VL_REPLY_ENVELOPE)
                        r = -EMSGSIZE;
                else if (r >= 0 && tlen > 2) {
                        if (used > 1)
                                fputc(',', f);
                        fwrite(t + 1, 1, tlen - 2, f);
                        used += tlen - 1;
                }
                json_object_put(batch);
        } while (r > 0);
        *ret_n = cur.n;
        map_dump_cursor_done(&cur);
        fputc(']', f);
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0)
                return r;
        *ret_len = size;
        *ret = TAKE_PTR(text);
        return 0;
}

/* Large maps stream with "more": batches of MAP_DUMP_BATCH, each walked once the last is sent. */
static int vl_method_map_dump(Call *call) {
        static const ParamField table[] = {
                { "map", json_type_int, param_uint32, offsetof(MapParameters, map), true },
                { "limit", json_type_int, param_uint64, offsetof(MapParameters, limit) },
                {}
        };
        _cleanup_(map_codec_freep) MapCodec *codec = NULL;
        _cleanup_close_ int fd = -1;
        MapParameters p = {};
        _cleanup_free_ char *text = NULL;
        json_object *reply;
        size_t len = 0, n = 0;
        int r;

        r = decode(call, table, &p);
        if (r != 0)
                return r;
        r = map_open(call, p.map, &fd, &codec);
        if (r <= 0)
                return r;
        if (map_codec_key_size(codec) == 0)
                return reply_errorf(call, VL_ERROR_NOT_SUPPORTED, "message",
                                    "map %u has no keys to walk (queue, stack or ring buffer)", p.map);
        if (call->more) {
                DumpStream *ds = malloc(sizeof(*ds));

                if (!ds)
                        return -ENOMEM;
                *ds = (DumpStream) { .codec = TAKE_PTR(codec), .fd = TAKE_FD(fd), .map = p.map,
                                     .limit = p.limit ?: MAP_DUMP_DEFAULT_LIMIT };
                return vl_reply_stream(call, dump_stream_step, ds, dump_stream_free);
        }
        r = dump_text(codec, fd, p.limit ?: MAP_DUMP_DEFAULT_LIMIT, &text, &len, &n);
        if (r == -EMSGSIZE)
                return reply_too_large(call, "message_size",
                                       "map %u has more entries than one reply may carry: "
                                       "call MapDump with \"more\" to get them in batches", p.map);
        if (r < 0)
                return r;
        reply = json_object_new_object();
        json_object_object_add(reply, "entries", json_frozen_take(json_type_array, TAKE_PTR(text), len));
        json_object_object_add(reply, "count", json_object_new_int64((int64_t) MIN(n, (size_t) INT32_MAX)));
        return vl_reply(call, reply, NULL, 0);
}

/* One entry of a map, as Lookup, Update and Delete address it: fd, codec, buffers, the key encoded. */
typedef struct MapEntry {
        int fd;
        MapCodec *codec;
        void *key, *value;
} MapEntry;

static void map_entry_done(MapEntry *e) {
        safe_close(e->fd);
        map_codec_free(e->codec);
        free(e->key);
        free(e->value);
}

/* 1 when e is ready, <= 0 when a reply was sent or the call failed. */
static int map_entry_open(Call *call, const MapParameters *p, MapEntry *e) {
        _cleanup_free_ char *msg = NULL;
        int r;

        e->fd = -1;
        r = map_open(call, p->map, &e->fd, &e->codec);
        if (r <= 0)
                return r;
        e->key = calloc(1, map_codec_key_size(e->codec) ?: 1);
        e->value = calloc(1, map_codec_value_size(e->codec) ?: 1);
        if (!e->key || !e->value)
                return -ENOMEM;
        if (!p->key)
                return reply_invalid_parameter(call, "key", "a key is needed");
        if (map_codec_key_from_json(e->codec, p->key, e->key, &msg) < 0)
                return reply_invalid_parameter(call, "key", msg ?: "the key does not fit the map's key type");
        return 1;
}

static const ParamField map_key_table[] = {
        { "map", json_type_int, param_uint32, offsetof(MapParameters, map), true },
        { "key", json_type_null, NULL, 0 },
        {}
};

static int vl_method_map_lookup(Call *call) {
        _cleanup_(map_entry_done) MapEntry e = { .fd = -1 };
        MapParameters p = {};
        json_object *reply;
        int r;

        r = decode_any(call, map_key_table, &p, &p.key, NULL);
        if (r != 0)
                return r;
        r = map_entry_open(call, &p, &e);
        if (r <= 0)
                return r;
        reply = json_object_new_object();
        if (bpf_map_lookup_elem(e.fd, e.key, e.value) == 0) {
                json_object_object_add(reply, "found", json_object_new_boolean(true));
                json_object_object_add(reply, "value", map_codec_value_to_json(e.codec, e.value));
        } else
                json_object_object_add(reply, "found", json_object_new_boolean(false));
        return vl_reply(call, reply, NULL, 0);
}

static int vl_method_map_update(Call *call) {
        static const ParamField table[] = {
                { "map", json_type_int, param_uint32, offsetof(MapParameters, map), true },
                { "key", json_type_null, NULL, 0 },
                { "value", json_type_null, NULL, 0 },
                { "flags", json_type_string, param_string, offsetof(MapParameters, flags) },
                {}
        };
        _cleanup_(map_entry_done) MapEntry e = { .fd = -1 };
        _cleanup_free_ char *msg = NULL;
        MapParameters p = {};
        uint64_t flags = BPF_ANY;
        int r;

        r = decode_any(call, table, &p, &p.key, &p.value);
        if (r != 0)
                return r;
        if (p.flags) {
                if (strcmp(p.flags, "noexist") == 0)
                        flags = BPF_NOEXIST;
                else if (strcmp(p.flags, "exist") == 0)
                        flags = BPF_EXIST;
                else if (strcmp(p.flags, "any") != 0)
                        return reply_invalid_parameter(call, "flags", "flags are \"any\", \"noexist\" or \"exist\"");
        }
        r = map_entry_open(call, &p, &e);
        if (r <= 0)
                return r;
        if (!p.value)
                return reply_invalid_parameter(call, "value", "a value is needed");
        /* Members the caller leaves out keep what the entry holds. */
        (void) bpf_map_lookup_elem(e.fd, e.key, e.value);
        if (map_codec_value_from_json(e.codec, p.value, e.value, &msg) < 0)
                return reply_invalid_parameter(call, "value", msg ?: "the value does not fit the map's value type");
        if (bpf_map_update_elem(e.fd, e.key, e.value, flags) < 0)
                return reply_errorf(call, VL_ERROR_INVALID_PARAMETER, "message", "the kernel refused the update: %s",
                                    strerror(errno));
        return vl_reply(call, NULL, NULL, 0);
}

static int vl_method_map_delete(Call *call) {
        _cleanup_(map_entry_done) MapEntry e = { .fd = -1 };
        MapParameters p = {};
        json_object *reply;
        int r;

        r = decode_any(call, map_key_table, &p, &p.key, NULL);
        if (r != 0)
                return r;
        r = map_entry_open(call, &p, &e);
        if (r <= 0)
                return r;
        reply = json_object_new_object();
        json_object_object_add(reply, "found", json_object_new_boolean(bpf_map_delete_elem(e.fd, e.key) == 0));
        return vl_reply(call, reply, NULL, 0);
}

static int vl_method_map_fd(Call *call) {
        static const ParamField table[] = {
                { "map", json_type_int, param_uint32, offsetof(MapParameters, map), true },
                {}
        };
        MapParameters p = {};
        MapInfo *info = NULL;
        json_object *reply;
        Object *o;
        int r, fd;

        r = decode(call, table, &p);
        if (r != 0)
                return r;
        o = find_map(call->manager, call->peer, p.map, &info);
        if (!o)
                return reply_no_such_map(call, p.map);
        fd = open_map(o, info);
        if (fd < 0)
                return fd;
        reply = json_object_new_object();
        json_object_object_add(reply, "fd", json_object_new_int(0));
        json_object_object_add(reply, "map", json_object_new_int64(p.map));
        return vl_reply(call, reply, &fd, 1);
}

static const char *origin_name(BtfOrigin o) {
        return o == BTF_ORIGIN_VMLINUX ? "kernel" : o == BTF_ORIGIN_MODULE ? "module" : "external";
}

static int vl_method_list_btf(Call *call) {
        static const ParamField table[] = { {} };
        BtfCache *c = call->manager->btf;
        json_object *reply, *list;
        int r;

        r = decode(call, table, NULL);
        if (r != 0)
                return r;
        list = json_object_new_array();
        for (size_t i = 0; i < c->n_entries; i++) {
                const BtfEntry *e = c->entries[i];
                const struct btf *base = btf__base_btf(e->btf);
                json_object *j = json_object_new_object();

                json_object_object_add(j, "name", json_object_new_string(e->name));
                json_object_object_add(j, "origin", json_object_new_string(origin_name(e->origin)));
                json_object_object_add(j, "id", json_object_new_int64(e->kernel_id));
                /* A module's own types, not its base's. */
                json_object_object_add(j, "types", json_object_new_int64(btf__type_cnt(e->btf) - 1 -
                                                                         (base ? btf__type_cnt(base) - 1 : 0)));
                json_object_object_add(j, "bytes", json_object_new_uint64(e->bytes));
                json_object_object_add(j, "parse_us", json_object_new_uint64(e->parse_us));
                json_object_object_add(j, "base", base ? json_object_new_string("vmlinux") : NULL);
                json_object_array_add(list, j);
        }
        reply = json_object_new_object();
        json_object_object_add(reply, "btf", list);
        json_object_object_add(reply, "generation", json_object_new_uint64(c->generation));
        return vl_reply(call, reply, NULL, 0);
}

typedef struct DescribeParameters {
        const char *name;
        const char *kind;
        const char *btf;
} DescribeParameters;

static int vl_method_describe_type(Call *call) {
        static const ParamField table[] = {
                { "name", json_type_string, param_string, offsetof(DescribeParameters, name), true },
                { "kind", json_type_string, param_string, offsetof(DescribeParameters, kind) },
                { "btf", json_type_string, param_string, offsetof(DescribeParameters, btf) },
                {}
        };
        BtfCache *c = call->manager->btf;
        DescribeParameters p = {};
        const CoreCandidate *cands;
        size_t n = 0, matches = 0;
        json_object *reply, *found = NULL, *others;
        int r;

        r = decode(call, table, &p);
        if (r != 0)
                return r;
        if (p.btf) {
                BtfEntry *e = btf_cache_find(c, p.btf);

                if (!e)
                        return reply_invalid_parameter(call, "btf", "no BTF of that name in the cache (see ListBTF)");
                if (e->index)
                        btf_index_lookup(e->index, p.name, strlen(p.name), &cands, &n);
                else
                        btf_cache_lookup(c, p.name, strlen(p.name), &cands, &n);
        } else
                btf_cache_lookup(c, p.name, strlen(p.name), &cands, &n);

        others = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
                const struct btf *btf = cands[i].target->btf;
                const struct btf_type *t = btf__type_by_id(btf, cands[i].type_id);

                /* The index is by essential name: a lookup of "foo" must not answer "foo___v2". */
                if (strcmp(btf__name_by_offset(btf, t->name_off) ?: "", p.name) != 0)
                        continue;
                if (p.kind && strcmp(btf_kind_name(t), p.kind) != 0)
                        continue;
                if (p.btf && strcmp(cands[i].target->name, p.btf) != 0)
                        continue;
                matches++;
                if (!found)
                        found = btf_describe_type(btf, cands[i].type_id, cands[i].target->name);
                else {
                        json_object *o = json_object_new_object();
                        json_object_object_add(o, "btf", json_object_new_string(cands[i].target->name));
                        json_object_object_add(o, "id", json_object_new_int64(cands[i].type_id));
                        json_object_object_add(o, "kind", json_object_new_string(btf_kind_name(t)));
                        json_object_array_add(others, o);
                }
        }
        if (!found) {
                json_object_put(others);
                return reply_invalid_parameter(call, "name", "no type of that name (and kind) in the BTF cache");
        }
        reply = json_object_new_object();
        json_object_object_add(reply, "type", found);
        json_object_object_add(reply, "matches", json_object_new_uint64(matches));
        json_object_object_add(reply, "others", others);
        return vl_reply(call, reply, NULL, 0);
}

static int vl_method_subscribe(Call *call) {
        static const ParamField table[] = { {} };
        int r = decode(call, table, NULL);

        if (r != 0)
                return r;
        return vl_subscribe(call);
}

const Method bpfcored_methods[] = {
        { VL_METHOD("Load"), vl_method_load, .slow = true },
        { VL_METHOD("List"), vl_method_list },
        { VL_METHOD("Get"), vl_method_get },
        { VL_METHOD("Unload"), vl_method_unload, .slow = true },
        { VL_METHOD("Status"), vl_method_status },
        { VL_METHOD("Check"), vl_method_check, .slow = true },
        { VL_METHOD("Subscribe"), vl_method_subscribe },
        { VL_METHOD("MapDump"), vl_method_map_dump },
        { VL_METHOD("MapLookup"), vl_method_map_lookup },
        { VL_METHOD("MapUpdate"), vl_method_map_update },
        { VL_METHOD("MapDelete"), vl_method_map_delete },
        { VL_METHOD("MapFd"), vl_method_map_fd },
        { VL_METHOD("Attach"), vl_method_attach, .slow = true },
        { VL_METHOD("Detach"), vl_method_detach, .slow = true },
        { VL_METHOD("ListBTF"), vl_method_list_btf },
        { VL_METHOD("DescribeType"), vl_method_describe_type },
        { VL_SERVICE_INTERFACE ".GetInfo", vl_method_get_info },
        { VL_SERVICE_INTERFACE ".GetInterfaceDescription", vl_method_get_interface_description },
        {}
};
