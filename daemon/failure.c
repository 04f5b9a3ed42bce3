/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "failure.h"
#include "protocol.h"

_printf_(1, 0) static char *vformat(const char *fmt, va_list ap) {
        char *s;

        return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

int failure_set(Failure *f, int err, const char *error, json_object *parameters) {
        failure_done(f);
        f->error = error;
        f->parameters = parameters ?: json_object_new_object();
        return err;
}

int failure_setf(Failure *f, int err, const char *error, const char *key, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        json_object *p;
        va_list ap;

        va_start(ap, fmt);
        s = vformat(fmt, ap);
        va_end(ap);
        p = json_object_new_object();
        if (p)
                json_object_object_add(p, key, json_object_new_string(s ?: "(out of memory)"));
        return failure_set(f, err, error, p);
}

void failure_done(Failure *f) {
        json_object_put(f->parameters);
        *f = (Failure) {};
}

int failure_invalid_parameter(Failure *f, int err, const char *parameter, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        json_object *p;
        va_list ap;

        va_start(ap, fmt);
        s = vformat(fmt, ap);
        va_end(ap);
        p = json_object_new_object();
        if (p) {
                json_object_object_add(p, "parameter", json_object_new_string(parameter));
                json_object_object_add(p, "message", json_object_new_string(s ?: "(out of memory)"));
        }
        return failure_set(f, err, VL_ERROR_INVALID_PARAMETER, p);
}

int failure_too_large(Failure *f, int err, const char *limit, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        json_object *p;
        va_list ap;

        va_start(ap, fmt);
        s = vformat(fmt, ap);
        va_end(ap);
        p = json_object_new_object();
        if (p) {
                json_object_object_add(p, "limit", json_object_new_string(limit));
                json_object_object_add(p, "message", json_object_new_string(s ?: "(out of memory)"));
        }
        return failure_set(f, err, VL_ERROR_TOO_LARGE, p);
}

int failure_system(Failure *f, int err, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL, *m = NULL;
        json_object *p;
        va_list ap;

        va_start(ap, fmt);
        s = vformat(fmt, ap);
        va_end(ap);
        if (asprintf(&m, "%s: %s", s ?: "(out of memory)", strerror(err < 0 ? -err : err)) < 0)
                m = NULL;
        p = json_object_new_object();
        if (p) {
                json_object_object_add(p, "message", json_object_new_string(m ?: "(out of memory)"));
                json_object_object_add(p, "errno", json_object_new_int(err < 0 ? -err : err));
        }
        return failure_set(f, err, VL_ERROR_SYSTEM, p);
}
