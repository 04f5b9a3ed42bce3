/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "bpfcore-client.h"
#include "macro.h"
#include "varlink-io.h"

struct BpfcoreClient {
        int fd;
        VlReader reader;
};

const char *bpfcore_default_socket(void) {
        const char *e = getenv(BPFCORED_SOCKET_ENV);

        return e && *e ? e : BPFCORED_DEFAULT_SOCKET;
}

int bpfcore_connect(const char *path, BpfcoreClient **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        BpfcoreClient *c;

        if (!path)
                path = bpfcore_default_socket();
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = TAKE_FD(fd);
        /* Replies may be large (List of many objects): allow the same cap. */
        vl_reader_init(&c->reader, VL_MAX_MESSAGE);
        *ret = c;
        return 0;
}

BpfcoreClient *bpfcore_disconnect(BpfcoreClient *c) {
        if (!c)
                return NULL;
        vl_reader_done(&c->reader);
        safe_close(c->fd);
        free(c);
        return NULL;
}

int bpfcore_client_fd(const BpfcoreClient *c) {
        return c->fd;
}

void bpfcore_reply_done(BpfcoreReply *r) {
        if (!r)
                return;
        json_object_put(r->parameters);
        free(r->error);
        close_many(r->fds, r->n_fds);
        free(r->fds);
        *r = (BpfcoreReply) {};
}

int bpfcore_next_reply(BpfcoreClient *c, BpfcoreReply *ret) {
        _cleanup_free_ char *reason = NULL;
        _cleanup_free_ int *fds = NULL;
        json_object *msg = NULL, *v;
        const char *text;
        size_t len, n_fds = 0;
        int r;

        for (;;) {
                r = vl_reader_peek(&c->reader, &text, &len, &fds, &n_fds);
                if (r < 0)
                        return r;
                if (r > 0)
                        break;
                struct pollfd p = { .fd = c->fd, .events = POLLIN };
                if (poll(&p, 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                r = vl_reader_fill(&c->reader, c->fd);
                if (r == -EAGAIN || r == -EINTR)
                        continue;
                if (r < 0)
                        return r;
                if (r == 0)
                        return -ECONNRESET;
        }

        /* Parsed where it was read: a big reply is not copied first. */
        r = vl_parse(text, len, &msg, &reason);
        vl_reader_consume(&c->reader);
        if (r < 0) {
                close_many(fds, n_fds);
                return r;
        }

        *ret = (BpfcoreReply) {};
        if (json_object_object_get_ex(msg, "error", &v) && json_object_is_type(v, json_type_string))
                ret->error = strdup(json_object_get_string(v));
        if (json_object_object_get_ex(msg, "parameters", &v) && json_object_is_type(v, json_type_object))
                ret->parameters = json_object_get(v);
        else
                ret->parameters = json_object_new_object();
        if (json_object_object_get_ex(msg, "continues", &v))
                ret->continues = json_object_get_boolean(v);
        ret->fds = TAKE_PTR(fds);
        ret->n_fds = n_fds;
        json_object_put(msg);
        return 0;
}

static int call(BpfcoreClient *c, const char *method, json_object *params, const int *fds,
                size_t n_fds, bool more, BpfcoreReply *ret) {
        json_object *msg;
        int r;

        msg = json_object_new_object();
        if (!msg)
                return -ENOMEM;
        json_object_object_add(msg, "method", json_object_new_string(method));
        if (params)
                json_object_object_add(msg, "parameters", json_object_get(params));
        if (more)
                json_object_object_add(msg, "more", json_object_new_boolean(true));
        r = vl_send(c->fd, msg, fds, n_fds);
        json_object_put(msg);
        if (r < 0)
                return r;
        return bpfcore_next_reply(c, ret);
}

int bpfcore_call(BpfcoreClient *c, const char *method, json_object *params, const int *fds,
                 size_t n_fds, BpfcoreReply *ret) {
        return call(c, method, params, fds, n_fds, false, ret);
}

int bpfcore_call_more(BpfcoreClient *c, const char *method, json_object *params, BpfcoreReply *ret) {
        return call(c, method, params, NULL, 0, true, ret);
}

char *bpfcore_error_describe(const BpfcoreReply *r) {
        const char *name, *dot, *sep = ": ";
        json_object *log = NULL;
        char *s = NULL;
        size_t size;
        FILE *f;

        if (!r->error)
                return NULL;
        dot = strrchr(r->error, '.');
        name = dot ? dot + 1 : r->error;
        f = open_memstream(&s, &size);
        if (!f)
                return NULL;
        fputs(name, f);
        /* "NoSuchObject: id 7"; a verifier log goes last, on its own lines. */
        json_object_object_foreach(r->parameters, key, val) {
                if (strcmp(key, "log") == 0) {
                        log = val;
                        continue;
                }
                if (json_object_is_type(val, json_type_string))
                        fprintf(f, "%s%s %s", sep, key, json_object_get_string(val));
                else
                        fprintf(f, "%s%s %s", sep, key, json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN));
                sep = ", ";
        }
        if (log)
                fprintf(f, "\n%s", json_object_get_string(log));
        fclose(f);
        return s;
}
