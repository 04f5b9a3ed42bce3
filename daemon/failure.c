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

void failure_done(Failure *f) {
        json_object_put(f->parameters);
        *f = (Failure) {};
}

/* error {[name_key: name,] key: the formatted text}; returns err. */
_printf_(7, 0) static int vfailure(Failure *f, int err, const char *error, const char *name_key, const char *name,
                                   const char *key, const char *fmt, va_list ap) {
        _cleanup_free_ char *s = vformat(fmt, ap);
        json_object *p = json_object_new_object();

        if (p) {
                if (name_key)
                        json_object_object_add(p, name_key, json_object_new_string(name));
                json_object_object_add(p, key, json_object_new_string(s ?: "(out of memory)"));
        }
        return failure_set(f, err, error, p);
}

int failure_setf(Failure *f, int err, const char *error, const char *key, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        err = vfailure(f, err, error, NULL, NULL, key, fmt, ap);
        va_end(ap);
        return err;
}

int failure_invalid_parameter(Failure *f, int err, const char *parameter, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        err = vfailure(f, err, VL_ERROR_INVALID_PARAMETER, "parameter", parameter, "message", fmt, ap);
        va_end(ap);
        return err;
}

int failure_too_large(Failure *f, int err, const char *limit, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        err = vfailure(f, err, VL_ERROR_TOO_LARGE, "limit", limit, "message", fmt, ap);
        va_end(ap);
        return err;
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
