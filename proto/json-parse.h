/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A strict JSON (RFC 8259) text to a json-c tree, in one pass over the text.
 * json-c's own tokener goes a character at a time through a state machine
 * and copies every string through a buffer: for a Load reply with a few
 * hundred relocations that is half the client's time. Same trees as json-c
 * gives (integers as int64, or uint64 past INT64_MAX; other numbers as
 * doubles that keep their text; later duplicate keys win), but stricter than
 * json-c in strict mode: no NaN or Infinity, no "1." or "-01", no integer
 * beyond 64 bits (json-c saturates it), no NUL in a key (json-c cuts the
 * key there), no key in single quotes, no control character in a string
 * unless escaped. An unpaired surrogate escape becomes U+FFFD, as in json-c.
 * The text must be valid UTF-8 already (the caller checks it).
 */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

/* 0 and the value (NULL for "null"), or -EBADMSG with what is wrong and where, or -ENOMEM. */
int json_parse_strict(const char *text, size_t len, unsigned max_depth, json_object **ret,
                      const char **ret_error, size_t *ret_offset);
