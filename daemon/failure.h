/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What went wrong, in the protocol's terms: a varlink error name and its
 * parameters. Modules fill one in and return a negative errno; the method
 * handler turns it into the error reply.
 */
#pragma once

#include <json-c/json.h>

#include "macro.h"

typedef struct Failure {
        const char *error;       /* VL_ERROR_*, NULL when nothing was set */
        json_object *parameters; /* owned */
} Failure;

/* Sets f (replacing what was there) to error with parameters (taken); returns err. */
int failure_set(Failure *f, int err, const char *error, json_object *parameters);
/* Sets f to error with one string parameter key, formatted; returns err. */
_printf_(5, 6) int failure_setf(Failure *f, int err, const char *error, const char *key, const char *fmt, ...);
/* io.bpfcored.InvalidParameter {parameter, message}; returns err. */
_printf_(4, 5) int failure_invalid_parameter(Failure *f, int err, const char *parameter, const char *fmt, ...);
/* io.bpfcored.TooLarge {limit, message}; returns err. */
_printf_(4, 5) int failure_too_large(Failure *f, int err, const char *limit, const char *fmt, ...);
/* io.bpfcored.SystemError {message: "<what>: <strerror>", errno}; returns err. */
_printf_(3, 4) int failure_system(Failure *f, int err, const char *fmt, ...);
void failure_done(Failure *f);
