/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Attach targets as words: TYPE TARGET... as `bpfcorectl attach ID PROGRAM`
 * takes them and as objects.d's `attach.PROGRAM = TYPE TARGET...` lines do,
 * made into the value of the Attach parameter named TYPE. One syntax, parsed
 * here for both.
 */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

/*
 * args[0..n) are the words after TYPE; pid > 0 (uprobes only) is --pid.
 * Relative paths are made absolute against cwd, or refused when cwd is NULL.
 * On success *ret_type is TYPE's static name and *ret_target the parameter's
 * value (a string for tracepoints, else an object). On failure *ret_error
 * says what is wrong, without a prefix ("tc: invalid direction 'up' ...").
 */
int attach_target_parse(const char *type, char *const *args, int n, int64_t pid, const char *cwd,
                        const char **ret_type, json_object **ret_target, char **ret_error);

/*
 * Decimal or 0x-hex, no sign, no blanks (strtoull() alone would take all
 * three): 0, -EINVAL when s is no such number, -ERANGE past UINT64_MAX. The
 * numbers of TARGET words, and bpfcorectl's others.
 */
int parse_u64(const char *s, uint64_t *ret);
